"""The live site meter's readings carry the instant they were measured, so the backend can ignore
one that arrives after a newer one (through another server process)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import pytest

from chargeshare.services.clock import ManualClock
from simulators.house_load import HouseProfile
from simulators.live_driver import ApiSession
from simulators.live_house_meter import run_house_meter
from tests.conftest import T0


class _Sent(Exception):
    """Ends the meter's loop after its first reading."""


class _Host:
    def __init__(self, clock: ManualClock) -> None:
        self.clock, self.sent = clock, list[tuple[str, Any]]()

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        self.sent.append((path, kw["json"]))
        raise _Sent


async def test_a_reading_says_when_it_was_measured() -> None:
    host, house = _Host(ManualClock(T0)), HouseProfile(19, 0)
    with pytest.raises(_Sent):
        await run_house_meter(cast(ApiSession, host), 7, house, [])
    ((path, reading),) = host.sent
    assert path == "/host/sites/7/house-load"
    assert reading["house_load_w"] == house.load_w(T0)
    assert datetime.fromisoformat(reading["measured_at"]) == T0
