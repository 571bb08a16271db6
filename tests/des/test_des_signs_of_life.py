"""The DES central system hears a charger's answers to its calls as the live server does: a sign of
life of a charger in service, which brings one marked offline back; nothing of one out of service."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
import simpy

from chargeshare.bootstrap import App
from chargeshare.domain.charger import BootPolicy, ChargerStatus
from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.frames import Call, CallError, CallResult, encode, parse
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import ChargerOnline
from simulators.des.central import DesCentral
from tests.conftest import add_charger


class Answering:
    """A charger end answering every call with an empty CALLRESULT, or a CALLERROR if `fails`."""

    def __init__(self, cp_id: str, *, fails: bool = False) -> None:
        self.cp_id, self.fails = cp_id, fails

    def receive(self, text: str) -> str | None:
        call = parse(text)
        assert isinstance(call, Call)
        if self.fails:
            return encode(CallError(call.unique_id, "InternalError", "not now"))
        return encode(CallResult(call.unique_id, {"status": "Accepted"}))


def seen_as(app: App, cp_id: str = "CP1") -> tuple[ChargerStatus, datetime | None]:
    with app.store.reading() as tx:
        charger = tx.chargers.get(cp_id)
    return charger.status, charger.last_seen_at


@pytest.mark.parametrize(("version", "fails"), [(V16, False), (V201, False), (V16, True)])
def test_an_answer_to_our_call_brings_back_a_charger_marked_offline(
    app: App, clock: ManualClock, version: OcppVersion, fails: bool
) -> None:
    env = simpy.Environment()
    central = DesCentral(env, app)
    add_charger(app)
    back: list[ChargerOnline] = []
    app.bus.subscribe(ChargerOnline, back.append)
    central.attach(Answering("CP1", fails=fails), version)
    env.run()
    with app.store.transaction() as tx:
        tx.chargers.set_status("CP1", ChargerStatus.OFFLINE, clock.now())  # as the watchdog would
    app.last_seen.forget("CP1")
    clock.advance(1)
    result = central.send("CP1", cmd.ChangeAvailability(0, True))
    assert isinstance(result, cmd.CallError if fails else cmd.Done)
    assert seen_as(app) == (ChargerStatus.ONLINE, clock.now())
    central.send("CP1", cmd.ChangeAvailability(0, True))
    assert [e.charge_point_id for e in back] == ["CP1"]  # announced once


def test_an_answer_of_a_charger_out_of_service_is_not_a_sign_of_life(app: App, clock: ManualClock) -> None:
    env = simpy.Environment()
    central = DesCentral(env, app)
    add_charger(app)  # seen once, then taken out of service
    app.marketplace.set_boot_policy("CP1", BootPolicy.PENDING)
    app.last_seen.forget("CP1")
    central.attach(Answering("CP1"), V16)
    env.run()
    before = seen_as(app)
    assert before == (ChargerStatus.REGISTERED, clock.now())
    clock.advance(1)
    assert isinstance(central.send("CP1", cmd.ChangeAvailability(0, True)), cmd.Done)
    assert seen_as(app) == before  # neither stamped nor brought online


def test_a_stamp_that_fails_leaves_the_answer_as_it_is(
    app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = simpy.Environment()
    central = DesCentral(env, app)
    add_charger(app)
    central.attach(Answering("CP1"), V16)
    env.run()

    def down(cp_id: str) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(app.charging, "heartbeat", down)
    # At WARNING whatever level an earlier test's logging setup left the gate's logger at.
    with caplog.at_level(logging.WARNING, logger="chargeshare.ocpp.boot_gate"):
        assert isinstance(central.send("CP1", cmd.ChangeAvailability(0, True)), cmd.Done)
    assert "could not stamp its answer to our call" in caplog.text
