"""A charger's answers to the backend's own calls are signs of life, as any frame it sends is: OCPP's
heartbeat interval is one of silence, so a charger kept busy with commands may send no Heartbeat.
Only a charger in service is stamped by them, over real loopback WebSockets."""

from __future__ import annotations

from datetime import datetime

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.charger import BootPolicy, ChargerStatus
from chargeshare.ocpp import commands as cmd
from chargeshare.services.events import ChargerOnline
from tests.conftest import add_charger
from tests.e2e.conftest import Central
from tests.e2e.ocpp_clients import Script, library_cp16
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def seen_as(app: App, cp_id: str) -> tuple[ChargerStatus, datetime | None]:
    with app.store.reading() as tx:
        charger = tx.chargers.get(cp_id)
    return charger.status, charger.last_seen_at


def marked_offline(app: App, cp_id: str) -> None:
    """As another process's watchdog would, and forgotten here: its next stamp is written at once."""
    with app.store.transaction() as tx:
        tx.chargers.set_status(cp_id, ChargerStatus.OFFLINE, app.clock.now())
    app.last_seen.forget(cp_id)


@pytest.mark.parametrize("answer", ["CALLRESULT", "CALLERROR"])
async def test_an_answer_to_our_call_brings_back_a_charger_marked_offline(
    central: Central, answer: str
) -> None:
    app, r = central.app, central.registry
    add_charger(app, "BUSY")
    back: list[ChargerOnline] = []
    app.bus.subscribe(ChargerOnline, back.append)
    async with library_cp16(central.ws, "BUSY", Script(fail={"UnlockConnector"})):
        await eventually(lambda: r.connected() == {"BUSY": "1.6"}, "its link")
        marked_offline(app, "BUSY")
        before = seen_as(app, "BUSY")[1]
        assert before is not None
        if answer == "CALLRESULT":
            got = await r.get_settings("BUSY", cmd.SettingKey("HeartbeatInterval"))
            assert isinstance(got, cmd.Done)
        else:
            assert isinstance(await r.unlock_connector("BUSY", 1), cmd.CallError)
        status, after = seen_as(app, "BUSY")
        assert status is ChargerStatus.ONLINE and after is not None and after > before
        assert [e.charge_point_id for e in back] == ["BUSY"]  # announced once
        await r.get_settings("BUSY", cmd.SettingKey("HeartbeatInterval"))
        assert len(back) == 1


async def test_a_pending_chargers_answer_is_not_a_sign_of_life(central: Central) -> None:
    app, r = central.app, central.registry
    add_charger(app, "PEND")  # seen once, then taken out of service
    app.marketplace.set_boot_policy("PEND", BootPolicy.PENDING)
    app.last_seen.forget("PEND")
    before = seen_as(app, "PEND")
    assert before[0] is ChargerStatus.REGISTERED and before[1] is not None
    back: list[ChargerOnline] = []
    app.bus.subscribe(ChargerOnline, back.append)
    async with library_cp16(central.ws, "PEND"):
        await eventually(lambda: r.connected() == {"PEND": "1.6"}, "its link")
        assert isinstance(await r.get_settings("PEND", cmd.SettingKey("HeartbeatInterval")), cmd.Done)
        assert seen_as(app, "PEND") == before  # neither stamped nor brought online
    assert back == []
