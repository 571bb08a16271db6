"""Faults are observable on the wire, in both versions: dropped frames never arrive, delayed answers
come late, refused commands are answered with a refusal and change nothing, malformed frames draw
CALLERRORs; a reboot keeps (or loses) the stop, duplicates repeat one frame, a skewed clock shows."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from chargeshare.ocpp.timestamps import parse_ts
from simulators.power import Vehicle
from simulators.wire_faults import ALL_COMMANDS
from tests.charger.conftest import SPEED, Rig
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


@pytest.mark.slow
async def test_dropped_frames_never_reach_the_csms(rig: Rig) -> None:
    rig.charger.conn.call_timeout_s = 0.05  # a dropped call is given up quickly
    rig.charger.wire.drop_rate = 0.5
    outcomes = [await rig.charger._call("Heartbeat", {}) for _ in range(40)]
    arrived = {f[1] for d, f in rig.csms.frames if d == "in" and f[0] == 2}
    assert all(o.ok == (o.unique_id in arrived) for o in outcomes)  # answered exactly when it got there
    assert all(o.error == "Timeout" for o in outcomes if not o.ok)
    assert 0 < sum(o.ok for o in outcomes) < 40
    assert rig.charger.wire.dropped >= 40 - sum(o.ok for o in outcomes)
    rig.charger.wire.clear()
    assert (await rig.charger._call("Heartbeat", {})).ok


async def test_delayed_responses_arrive_late_and_in_order(rig: Rig) -> None:
    rig.charger.wire.delay_s = 120  # simulated: 0.2 s of real time at the rig's speed
    t0 = time.monotonic()
    outcome = await rig.csms.command("TriggerMessage", {"requestedMessage": "Heartbeat"})
    waited = time.monotonic() - t0
    assert outcome.payload == {"status": "Accepted"}
    assert waited >= 120 / SPEED
    assert rig.charger.wire.delayed == 1
    # The answer still comes before the heartbeat it promised.
    frames = rig.csms.frames
    answer = next(i for i, (_, f) in enumerate(frames) if f[0] == 3 and f[1] == outcome.unique_id)

    def heartbeat_after_answer() -> bool:
        return any(f[0] == 2 and f[2] == "Heartbeat" for _, f in frames[answer:])

    await eventually(heartbeat_after_answer, "the heartbeat after the answer")


async def test_named_commands_are_refused_and_change_nothing(rig: Rig) -> None:
    rig.charger.wire.reject = frozenset({"Reset"})
    kind = {"type": "Hard"} if rig.version == "1.6" else {"type": "Immediate"}
    refused = await rig.csms.command("Reset", kind)
    assert refused.payload == {"status": "Rejected"}
    trigger = await rig.csms.command("TriggerMessage", {"requestedMessage": "Heartbeat"})
    assert trigger.payload == {"status": "Accepted"}  # not named: answered as usual
    assert rig.charger.resets == 0 and rig.csms.connections == 1
    assert rig.charger.wire.rejected == 1


async def test_refusing_everything_uses_the_versions_own_words(rig: Rig) -> None:
    rig.charger.wire.reject = frozenset({ALL_COMMANDS})
    if rig.version == "1.6":
        unlock = await rig.csms.command("UnlockConnector", {"connectorId": 1})
        assert unlock.payload == {"status": "UnlockFailed"}
        config = await rig.csms.command("GetConfiguration", {})
        assert config.error == "GenericError"  # no status to refuse with: a CALLERROR
    else:
        asked = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        got = await rig.csms.command("GetVariables", {"getVariableData": [asked]})
        assert got.payload == {"getVariableResult": [{"attributeStatus": "Rejected", **asked}]}
    assert rig.charger.wire.rejected == (2 if rig.version == "1.6" else 1)


async def test_malformed_frames_draw_callerrors_and_the_charger_carries_on(rig: Rig) -> None:
    before = len(rig.csms.errors_we_sent())
    await rig.charger.send_malformed(4)
    await eventually(lambda: len(rig.charger.wire.malformed_answers) == 4, "four CALLERRORs")
    codes = [f[2] for f in rig.csms.errors_we_sent()[before:]]
    assert codes == rig.charger.wire.malformed_answers
    format_violation = "FormationViolation" if rig.version == "1.6" else "FormatViolation"
    assert codes[0] == format_violation and codes[1] == format_violation and codes[3] == "NotImplemented"
    assert codes[2] in ("TypeConstraintViolation", format_violation)
    rig.csms.frames = [(d, f) for d, f in rig.csms.frames if f[0] != 4 or d != "out"]  # expected errors
    assert (await rig.charger._call("Heartbeat", {})).ok


async def test_a_reboot_keeps_the_stop_for_the_csms_unless_the_queue_is_lost(rig: Rig) -> None:
    vc = rig.charger
    await vc.plug_in(1, "TAG-1", Vehicle(60_000, 20_000, 7_400), 20_000)
    await vc.reboot(lose_queue=False)
    assert rig.csms.connections == 2 and vc.queue == []
    action, stop = [(a, p) for a, p in rig.csms.calls if a in vc.dialect.transaction_actions][-1]
    if rig.version == "1.6":
        assert (action, stop["reason"]) == ("StopTransaction", "Reboot")
    else:
        assert (stop["eventType"], stop["transactionInfo"]["stoppedReason"], stop["offline"]) == (
            "Ended",
            "Reboot",
            True,
        )
    sent = len(rig.csms.calls)
    await vc.unplug(1)
    await vc.plug_in(1, "TAG-1", Vehicle(60_000, 20_000, 7_400), 20_000)
    await vc.reboot(lose_queue=True)
    new = [a for a, p in rig.csms.calls[sent:] if a in ("StopTransaction",) or p.get("eventType") == "Ended"]
    assert new == [] and vc.queue == []  # the stop died with the power


async def test_duplicated_transaction_frames_reach_the_csms_twice_with_one_id(rig: Rig) -> None:
    rig.charger.duplicate_sends = True
    await rig.charger.plug_in(1, "TAG-1", Vehicle(60_000, 20_000, 7_400), 20_000)
    await rig.charger.unplug(1)
    sent = [f for d, f in rig.csms.frames if d == "in" and f[0] == 2]
    transactional = [f for f in sent if f[2] in rig.charger.dialect.transaction_actions]
    ids = [f[1] for f in transactional]
    assert len(ids) >= 4 and all(ids.count(i) == 2 for i in ids)
    heartbeats_and_statuses = [f[1] for f in sent if f[2] not in rig.charger.dialect.transaction_actions]
    assert len(heartbeats_and_statuses) == len(set(heartbeats_and_statuses))  # only transaction frames


async def test_a_skewed_clock_shows_in_every_timestamp(rig: Rig) -> None:
    rig.charger.clock_skew_s = 7_200
    await rig.charger.report_status(rig.charger.connectors[1])
    (status,) = rig.csms.sent_by_charger("StatusNotification")[-1:]
    assert parse_ts(status["timestamp"]) - rig.clock.now() > timedelta(hours=1, minutes=59)
