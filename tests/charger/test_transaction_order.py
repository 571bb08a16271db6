"""Transaction messages reach the CSMS in the order the charger's tasks submit them: one the CSMS
fails to process is sent again before anything submitted after it, whichever task submitted that.
The clock is moved by hand, so no periodic task sends anything the test did not ask for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from chargeshare.ocpp import V16, V21, V201, OcppVersion
from simulators.charger import VirtualCharger
from simulators.power import Vehicle
from tests.charger.fake_csms import FakeCsms, fake_csms
from tests.clocks import HandClock
from tests.conftest import T0
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


class HandPaced(VirtualCharger):
    """Notes each wait before a transaction message goes again, and moves the hand clock past it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waits: list[float] = []
        self.on_wait: Callable[[], None] = lambda: None

    async def wait_to_resend(self, simulated_s: float) -> None:
        self.waits.append(simulated_s)
        self.on_wait()
        assert isinstance(self.clock, HandClock)
        self.clock.advance(simulated_s)


@dataclass
class Rig:
    csms: FakeCsms
    charger: HandPaced
    clock: HandClock

    def v(self, v16: Any, v2x: Any) -> Any:
        return v16 if self.csms.version == V16 else v2x

    def tx_frames_in(self) -> list[tuple[str, dict[str, Any]]]:
        """Transaction messages as they arrived at the CSMS, retries included."""
        actions = self.charger.dialect.transaction_actions
        return [(f[2], f[3]) for d, f in self.csms.frames if d == "in" and f[0] == 2 and f[2] in actions]


@pytest.fixture(params=[V16, V201, V21], ids=["ocpp16", "ocpp201", "ocpp21"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    version = OcppVersion(request.param)
    async with fake_csms(version) as csms:
        clock = HandClock(T0)
        vc = HandPaced("VC1", csms.url, clock, [7_400], protocol=version, call_timeout_s=5)
        await vc.start()
        try:
            yield Rig(csms, vc, clock)
        finally:
            await vc.stop()
        assert csms.errors_we_sent() == [], "every frame the charger sent must pass its schema"


CAR = Vehicle(battery_wh=60_000, soc_wh=20_000, max_power_w=7_400)


def kind(rig: Rig, message: tuple[str, dict[str, Any]]) -> str:
    action, payload = message
    return action if action != "TransactionEvent" else str(payload["eventType"])


async def test_a_stop_submitted_while_a_reading_is_retried_goes_after_the_retry(rig: Rig) -> None:
    plugged = await rig.charger.plug_in(1, "TAG-1", CAR, 20_000)
    assert plugged.transaction is not None
    rig.clock.advance(60)
    meter_action = rig.v("MeterValues", "TransactionEvent")
    # The next reading is held at the CSMS, then answered InternalError once the stop is submitted.
    rig.csms.hold[meter_action] = answer = asyncio.Event()
    rig.csms.fail_next[meter_action] = 1
    before = len(rig.tx_frames_in())
    reading = asyncio.create_task(rig.charger._meter_tick())
    await eventually(lambda: rig.csms.held == [meter_action], "the reading on the wire")
    stop = asyncio.create_task(rig.charger.unplug(1))
    # The stop is submitted (its transaction ended locally, in the same step as the send is asked).
    await eventually(lambda: rig.charger.connectors[1].transaction is None, "the stop submitted")
    answer.set()
    await asyncio.wait_for(asyncio.gather(reading, stop), 10)

    sent = [kind(rig, m) for m in rig.tx_frames_in()[before:]]
    assert sent == rig.v(
        ["MeterValues", "MeterValues", "StopTransaction"], ["Updated", "Updated", "Ended"]
    ), "the reading the CSMS failed to process is sent again before the stop"
    assert rig.charger.messages_given_up == 0


async def test_a_reading_the_csms_fails_to_process_goes_again_after_the_interval_times_its_sendings(
    rig: Rig,
) -> None:
    await rig.charger.plug_in(1, "TAG-1", CAR, 20_000)
    rig.clock.advance(60)
    meter_action = rig.v("MeterValues", "TransactionEvent")
    rig.csms.fail_next[meter_action] = 2  # fails twice, then is kept: the third of 3 attempts
    before = len(rig.tx_frames_in())
    sent_by_then: list[int] = []
    rig.charger.on_wait = lambda: sent_by_then.append(len(rig.tx_frames_in()) - before)
    await rig.charger._meter_tick()

    # TransactionMessageRetryInterval (60 s by default) times the sendings so far, before each.
    assert rig.charger.waits == [60.0, 120.0]
    assert sent_by_then == [1, 2] and len(rig.tx_frames_in()) - before == 3
    assert rig.charger.messages_given_up == 0


async def test_a_reading_in_flight_when_the_link_is_dropped_is_queued_at_once_and_replayed() -> None:
    # The call timeout is far longer than the test's bound: the reading must not wait it out.
    async with fake_csms(V201) as csms:
        clock = HandClock(T0)
        vc = HandPaced("VC1", csms.url, clock, [7_400], protocol=V201, call_timeout_s=3_600)
        await vc.start()
        try:
            await vc.plug_in(1, "TAG-1", CAR, 20_000)
            clock.advance(60)
            csms.hold["TransactionEvent"] = asyncio.Event()  # never answered on this link
            reading = asyncio.create_task(vc._meter_tick())
            await eventually(lambda: csms.held == ["TransactionEvent"], "the reading on the wire")
            await vc.go_offline()
            await eventually(reading.done, "the reading given up as offline")
            assert [e.action for e in vc.queue] == ["TransactionEvent"], "kept for the replay"

            del csms.hold["TransactionEvent"]
            before = len(csms.sent_by_charger("TransactionEvent"))
            await vc.come_back()
            await eventually(lambda: not vc.queue, "the queue replayed")
            assert len(csms.sent_by_charger("TransactionEvent")) == before + 1
        finally:
            await vc.stop()
        assert csms.errors_we_sent() == []


class GatedRetry(HandPaced):
    """Holds each wait before a transaction message goes again until the test opens the gate."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def wait_to_resend(self, simulated_s: float) -> None:
        self.waiting.set()
        await self.gate.wait()
        await super().wait_to_resend(simulated_s)


@pytest.mark.parametrize("version", [V16, V201], ids=["ocpp16", "ocpp201"])
@pytest.mark.parametrize("lose_queue", [True, False], ids=["queue-lost", "queue-kept"])
async def test_a_power_cut_while_a_reading_waits_for_its_retry_treats_it_as_queued(
    version: str, lose_queue: bool
) -> None:
    # The reading waiting out its interval is in the charger's memory like the queue: lost with it,
    # or kept ahead of the stops the power cut queues behind it.
    async with fake_csms(OcppVersion(version)) as csms:
        clock = HandClock(T0)
        vc = GatedRetry("VC1", csms.url, clock, [7_400], protocol=OcppVersion(version), call_timeout_s=5)
        await vc.start()
        try:
            await vc.plug_in(1, "TAG-1", CAR, 20_000)
            clock.advance(60)
            meter_action = "MeterValues" if version == V16 else "TransactionEvent"
            csms.fail_next[meter_action] = 1
            c = vc.connectors[1]
            assert c.transaction is not None
            reading = asyncio.create_task(vc.send_message(vc.meter_message(c, c.transaction)))
            await asyncio.wait_for(vc.waiting.wait(), 10)
            # A reboot's steps, with the retry's interval ending while the charger is down.
            await vc._drop_link()
            vc.power_cut(lose_queue=lose_queue)
            vc.gate.set()
            await asyncio.wait_for(reading, 10)
            queued = [kind_of(e.action, e.payload) for e in vc.queue]
            stop = "StopTransaction" if version == V16 else "Ended"
            reading_kind = "MeterValues" if version == V16 else "Updated"
            assert queued == ([] if lose_queue else [reading_kind, stop])
        finally:
            await vc.stop()


def kind_of(action: str, payload: dict[str, Any]) -> str:
    return action if action != "TransactionEvent" else str(payload["eventType"])
