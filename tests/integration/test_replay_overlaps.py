"""API calls that were in flight together on the backend replay to the recorded outcomes: a refused
booking goes after the overlapping one that won, and a booking that only succeeded because a
cancellation landed first is tried again where it finished."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from simulators.replay import replay
from simulators.trace import FORMAT, FORMAT_VERSION, read_trace

T0 = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
PASSWORD = "correct-horse-battery-9"


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def http(
    arrived: float, done: float, method: str, path: str, body: Any, status: int, response: Any, token: str
) -> dict[str, Any]:
    return {
        "t": at(arrived),
        "done": at(done),
        "kind": "http",
        "method": method,
        "path": path,
        "body": body,
        "status": status,
        "response": response,
        "auth": f"Bearer {token}",
    }


def ocpp(t: float, uid: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    frame = json.dumps([2, uid, action, payload])
    return {"t": at(t), "kind": "ocpp", "cp": "CP1", "dir": "in", "version": "1.6", "frame": frame}


def sign_up(t: float, n: int) -> dict[str, Any]:
    body = {"email": f"d{n}@drivers.example", "password": PASSWORD, "name": f"D{n}", "id_tag": f"TAG{n}"}
    response = {"access_token": f"token-{n}", "driver_id": n, "account_id": n}
    record = http(t, t + 1, "POST", "/auth/register/driver", body, 201, response, "")
    del record["auth"]
    return record


def book(arrived: float, done: float, token: str, status: int, booking_id: int | None) -> dict[str, Any]:
    body = {"charger_id": 1, "connector_no": 1, "minutes": 60, "max_energy_wh": 10_000}
    response = {"id": booking_id} if booking_id else {"error": "booking_conflict"}
    return http(arrived, done, "POST", "/bookings", body, status, response, token)


def overlapping_calls() -> list[dict[str, Any]]:
    charger = {
        "t": at(0),
        "kind": "charger",
        "id": 1,
        "cp": "CP1",
        "host": 1,
        "lat": 51.45,
        "lon": -2.59,
        "price_per_kwh": 30,
        "connectors": [{"no": 1, "type": "type2", "max_power_w": 7400}],
    }
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
    available = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    return [
        {"kind": "header", "format": FORMAT, "version": FORMAT_VERSION, "start": at(0)},
        charger,
        ocpp(1, "1", "BootNotification", boot),
        ocpp(2, "2", "StatusNotification", available),
        sign_up(3, 1),
        sign_up(5, 2),
        # Driver 2 arrived first but lost: driver 1's booking, arriving later, won while both were in flight.
        book(60, 90, "token-2", 409, None),
        book(61, 70, "token-1", 201, 1),
        # Driver 2 tries again; it succeeded because driver 1's cancellation (arriving later) landed first.
        book(180, 240, "token-2", 201, 2),
        http(200, 210, "POST", "/bookings/1/cancel", None, 200, {"id": 1}, "token-1"),
    ]


def run(tmp_path: Path, lines: list[dict[str, Any]]) -> Any:
    path = tmp_path / "overlaps.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return asyncio.run(replay(read_trace(path)))


def test_calls_in_flight_together_replay_to_the_recorded_outcomes(tmp_path: Path) -> None:
    result = run(tmp_path, overlapping_calls())
    assert result.divergence_count == 0, result.divergences
    assert result.ok, (result.run.invariants, result.run.errors)
    assert result.run.summary["bookings"] == 2
    assert result.run.summary["bookings_by_status"]["cancelled"] == 1


def test_without_finish_times_the_same_calls_replay_in_arrival_order(tmp_path: Path) -> None:
    lines = [{k: v for k, v in x.items() if k != "done"} for x in overlapping_calls()]
    result = run(tmp_path, lines)
    assert result.divergence_count >= 2  # driver 2 wins the first race, then driver 1's cancel is refused
    assert any("answered 201, recorded 409" in d for d in result.divergences)
