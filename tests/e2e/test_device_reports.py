"""Device-model reports over real loopback WebSockets: GetBaseReport and GetReport from the typed
registry make a 2.0.1 or 2.1 virtual charger send NotifyReport, which the backend keeps and folds
into the charger's device model for operators."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chargeshare.ocpp import commands as cmd
from chargeshare.services.clock import SystemClock
from simulators.charger import VirtualCharger
from simulators.evse_model_v201 import evse_variables
from tests.conftest import add_charger
from tests.e2e.conftest import Central
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["2.0.1", "2.1"])
async def charger(central: Central, request: pytest.FixtureRequest) -> AsyncIterator[VirtualCharger]:
    add_charger(central.app, "VC-REP", online=False)  # registered: what it reports is kept
    charger = VirtualCharger("VC-REP", central.ws, SystemClock(), [7_400], protocol=request.param)
    await charger.start()
    try:
        yield charger
    finally:
        await charger.stop()


def summaries(c: Central) -> list[str]:
    return [r.summary for r in c.app.reports.reports("VC-REP", ["NotifyReport"])]


async def test_reports_of_the_device_model_reach_the_operator(
    central: Central,
    charger: VirtualCharger,
) -> None:
    r = central.registry
    assert await r.send("VC-REP", cmd.GetBaseReport(5)) == cmd.Done(cmd.Status.ACCEPTED, None)
    evses = sum(len(evse_variables(charger, c)) for c in charger.connectors.values())
    everything = len(charger.settings.definitions) + evses  # and each EVSE's own component
    await eventually(
        lambda: summaries(central) == [f"request 5 part 0: {everything} variables"], "NotifyReport 5"
    )
    model = central.app.reports.reported_state("VC-REP").device_model
    heartbeat = next(d for d in model if (d.component, d.variable) == ("OCPPCommCtrlr", "HeartbeatInterval"))
    assert (heartbeat.attribute, heartbeat.value, heartbeat.mutability) == ("Actual", "300", "ReadWrite")
    settable = len([s for s in charger.settings.definitions if not s.readonly])
    configuration = cmd.GetBaseReport(6, cmd.ReportBase.CONFIGURATION)
    assert await r.send("VC-REP", configuration) == cmd.Done(cmd.Status.ACCEPTED, None)
    await eventually(
        lambda: f"request 6 part 0: {settable} variables" in summaries(central), "NotifyReport 6"
    )
    one = cmd.GetReport(7, (cmd.SettingKey("HeartbeatInterval", "OCPPCommCtrlr"),))
    assert await r.send("VC-REP", one) == cmd.Done(cmd.Status.ACCEPTED, None)
    await eventually(lambda: "request 7 part 0: 1 variables" in summaries(central), "NotifyReport 7")
    # What it cannot report is refused, and no report follows.
    nothing = cmd.GetReport(8, (cmd.SettingKey("", "NoSuchCtrlr"),))
    assert await r.send("VC-REP", nothing) == cmd.Rejected(cmd.Status.EMPTY_RESULT_SET)
    problems = cmd.GetReport(9, criteria=(cmd.ComponentCriterion.PROBLEM,))
    assert await r.send("VC-REP", problems) == cmd.Rejected(cmd.Status.EMPTY_RESULT_SET)
    summary = cmd.GetBaseReport(10, cmd.ReportBase.SUMMARY)
    assert await r.send("VC-REP", summary) == cmd.Rejected(cmd.Status.NOT_SUPPORTED)
    assert len(summaries(central)) == 3
