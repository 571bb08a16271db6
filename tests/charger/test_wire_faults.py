"""Wire faults are observable on the wire: dropped frames never arrive, delayed answers come late,
refused commands are answered with a refusal and change nothing, malformed frames draw CALLERRORs."""

from __future__ import annotations

import time

import pytest

from simulators.wire_faults import ALL_COMMANDS
from tests.charger.conftest import SPEED, Rig
from tests.charger.fake_csms import eventually

pytestmark = pytest.mark.e2e


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
