"""Drive our virtual charger as the operator would drive a real one: the `--auto` mode, and the
harness the certifier's own tests (and its mutation tests) run on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from chargeshare.certify.operator import Action, Step
from simulators.charger import PlugRefused, VirtualCharger
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
