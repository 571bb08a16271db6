from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from chargeshare.ocpp import V16, V21, V201, OcppVersion
from chargeshare.services.clock import ScaledClock
from simulators.charger import VirtualCharger
from tests.charger.fake_csms import FakeCsms, fake_csms
from tests.conftest import T0

SPEED = 600.0  # one real second is ten simulated minutes: resets and reboots take milliseconds


@dataclass
class Rig:
    csms: FakeCsms
    charger: VirtualCharger
    clock: ScaledClock

    @property
    def version(self) -> OcppVersion:
        return self.csms.version


@pytest.fixture(params=[V16, V201, V21], ids=["ocpp16", "ocpp201", "ocpp21"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """A virtual charger connected to the in-process CSMS, in each OCPP version."""
    version = OcppVersion(request.param)
    async with fake_csms(version) as csms:
        clock = ScaledClock(T0, SPEED)
        vc = VirtualCharger(
            "VC1", csms.url, clock, [7_400, 22_000], protocol=version, meter_interval_s=60, call_timeout_s=1
        )
        await vc.start()
        try:
            yield Rig(csms, vc, clock)
        finally:
            await vc.stop()
        assert csms.errors_we_sent() == [], "every frame the charger sent must pass its schema"
