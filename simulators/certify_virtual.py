"""Drive our virtual charger as the operator would drive a real one: the `--auto` mode, and the
harness the certifier's own tests (and its mutation tests) run on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from chargeshare.bootstrap import Config, build
from chargeshare.certify.cases import cases_for
from chargeshare.certify.context import Settings
from chargeshare.certify.model import CertificationReport, NotApplicable, Profile
from chargeshare.certify.operator import Action, NoOperator, Step
from chargeshare.certify.runner import Certifier
from chargeshare.certify.server import CertificationServer, register, served_locations
from chargeshare.ocpp import OcppVersion
from chargeshare.services.clock import ScaledClock
from simulators.charger import PlugRefused, VirtualCharger
from simulators.faulty_chargers import charger_class
from simulators.power import Vehicle

log = logging.getLogger(__name__)

TARGET_WH = 40_000  # more than any case needs: the car never fills up mid-case


def test_car() -> Vehicle:
    return Vehicle(battery_wh=60_000, soc_wh=15_000, max_power_w=11_000)


class VirtualOperator:
    """Plugs cars in and presents cards at a virtual charger in this process."""

    def __init__(self, charger: VirtualCharger) -> None:
        self.charger = charger
        self._tasks: set[asyncio.Task[Any]] = set()

    async def perform(self, step: Step) -> bool:
        c = self.charger
        if step.action is Action.PLUG_AND_PRESENT:
            assert step.id_tag is not None
            self._spawn(c.plug_in(step.connector, step.id_tag, test_car(), TARGET_WH))
            return True
        if step.action is Action.PRESENT_CARD:  # not a missing person: this charger cannot do it
            raise NotApplicable("the virtual charger reads a card only once a car is plugged in")
        if step.action is Action.PLUG_CABLE:
            with contextlib.suppress(PlugRefused):  # a case may expect the refusal
                await c.plug_car(step.connector, test_car(), TARGET_WH)
            return True
        await self._drain()
        await c.unplug(step.connector)
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and isinstance(task.exception(), PlugRefused):
            log.info("the charger refused the car: %s", task.exception())  # a case may expect this

    async def _drain(self) -> None:
        """Let a plug-in in progress finish its round trips before the car leaves."""
        for task in list(self._tasks):
            with contextlib.suppress(PlugRefused, asyncio.CancelledError):
                try:
                    await asyncio.wait_for(asyncio.shield(task), 5)
                except TimeoutError:
                    log.info("a plug-in was still under way when the car left")


async def certify_virtual(
    protocol: OcppVersion,
    variant: str | None = None,
    *,
    settings: Settings,
    clock_factor: float = 30.0,
    meter_interval_s: int = 30,
    profiles: set[Profile] | None = None,
    cp_id: str = "CERT-VIRTUAL",
    password: str | None = "certify-virtual-charger",
    charger: type[VirtualCharger] | None = None,
    nobody_there: bool = False,
) -> CertificationReport:
    """Certify our virtual charger (or a faulty variant, by name or class) end to end: a throw-away
    backend database, the certifier's endpoint on a loopback port, the charger over a real WebSocket
    (with HTTP Basic auth unless `password` is None: checking one costs a tenth of a second of CPU)."""
    clock = ScaledClock(datetime.now(UTC), clock_factor)
    app = build(Config(database_url="sqlite://"), clock=clock)
    try:
        async with CertificationServer(app, cp_id, {settings.id_tag, settings.other_tag}) as server:
            register(app, cp_id, password)
            settings = served_locations(app, settings, cp_id, server.ocpp_url)
            cp = (charger or charger_class(variant))(
                cp_id,
                server.ocpp_url,
                clock,
                [7_400],
                protocol=protocol,
                meter_interval_s=meter_interval_s,
                password=password,
            )
            await cp.start()
            try:
                certifier = Certifier(
                    server.registry,
                    cp_id,
                    server.log,
                    NoOperator() if nobody_there else VirtualOperator(cp),
                    clock,
                    settings,
                    case_timeout_s=settings.event_timeout_s * 6,
                )
                version = await certifier.wait_for_charger(settings.event_timeout_s)
                return await certifier.run(cases_for(version, profiles), version)
            finally:
                await cp.stop()
    finally:
        app.close()
