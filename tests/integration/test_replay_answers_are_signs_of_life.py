"""A recorded charger's answers to the backend's calls are signs of life in replay, as on the live
server: one busy answering commands, and sending no Heartbeat, stays online through the replay's
watchdog, and one marked offline comes back with its next answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chargeshare.bootstrap import App
from chargeshare.domain.charger import ChargerStatus
from chargeshare.domain.errors import NotFound
from simulators.replay import replay
from simulators.trace import FORMAT, FORMAT_VERSION, read_trace

T0 = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
CP = "CP1"
SILENT_S = 300 * 3  # the watchdog's silence under the default rules (heartbeat 300 s, 3 intervals)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def ocpp(t: float, direction: str, frame: list[Any]) -> dict[str, Any]:
    text = json.dumps(frame)
    return {"t": at(t), "kind": "ocpp", "cp": CP, "dir": direction, "version": "1.6", "frame": text}


def answered(t: float, n: int, result: bool = True) -> list[dict[str, Any]]:
    """The backend's call and the charger's answer to it a second later (a result, or an error)."""
    uid = f"cs-{n}"
    call = ocpp(t, "out", [2, uid, "TriggerMessage", {"requestedMessage": "StatusNotification"}])
    answer = [3, uid, {"status": "Accepted"}] if result else [4, uid, "NotSupported", "", {}]
    return [call, ocpp(t + 1, "in", answer)]


def booted() -> list[dict[str, Any]]:
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
    available = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    return [
        {"kind": "header", "format": FORMAT, "version": FORMAT_VERSION, "start": at(0)},
        ocpp(1, "in", [2, "1", "BootNotification", boot]),
        ocpp(2, "in", [2, "2", "StatusNotification", available]),
    ]


def statuses(tmp_path: Path, lines: list[dict[str, Any]]) -> list[tuple[datetime, ChargerStatus]]:
    """The charger's status at each sample of the replay (every minute of trace time, and its end)."""
    seen: list[tuple[datetime, ChargerStatus]] = []

    def sample(app: App) -> None:
        with app.store.transaction() as tx, contextlib.suppress(NotFound):  # not made before its boot
            seen.append((app.clock.now(), tx.chargers.get(CP).status))

    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = asyncio.run(replay(read_trace(path), sampler=sample))
    assert result.ok, (result.run.invariants, result.run.errors)
    return seen


def test_a_charger_answering_commands_without_heartbeats_stays_online(tmp_path: Path) -> None:
    lines = booted()
    for n, t in enumerate(range(300, 4 * SILENT_S, 300), start=1):
        lines += answered(t, n, result=n % 2 == 1)
    seen = statuses(tmp_path, lines)
    assert seen[-1][0] >= T0 + timedelta(seconds=3 * SILENT_S)  # well past the watchdog's silence
    assert {status for _, status in seen} == {ChargerStatus.ONLINE}, seen


def test_a_charger_marked_offline_comes_back_with_its_answer(tmp_path: Path) -> None:
    offline = {"t": at(100), "kind": "op", "op": "charger_offline", "cp": CP}
    lines = [*booted(), offline, *answered(200, 1), *answered(300, 2)[:1]]  # the trace ends at 300
    seen = dict(statuses(tmp_path, lines))
    assert seen[T0 + timedelta(seconds=180)] is ChargerStatus.OFFLINE
    assert seen[T0 + timedelta(seconds=240)] is ChargerStatus.ONLINE
