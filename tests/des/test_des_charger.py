"""The DES charger answers the central system's commands by the live charger's rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import simpy

from chargeshare.bootstrap import App, Config
from chargeshare.ocpp.frames import Call, encode
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.clock import ManualClock
from simulators.charger import VirtualCharger
from simulators.des.central import DesCentral
from simulators.des.charger import DesCharger
from simulators.firmware import ConnectorState
from simulators.live import DEFAULT_START
from tests.conftest import SQLITE_MEMORY, build_for_tests

EXPIRES = DEFAULT_START + timedelta(minutes=30)


@pytest.fixture
def app() -> Iterator[App]:
    built = build_for_tests(Config(database_url=SQLITE_MEMORY, locks_enabled=False))
    try:
        yield built
    finally:
        built.close()


def _reserve_now(version: str) -> dict[str, Any]:
    if version == "1.6":
        return {"connectorId": 1, "expiryDate": format_ts(EXPIRES), "idTag": "TAG", "reservationId": 7}
    return {
        "id": 7,
        "evseId": 1,
        "expiryDateTime": format_ts(EXPIRES),
        "idToken": {"idToken": "TAG", "type": "ISO14443"},
    }


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
@pytest.mark.parametrize(
    ("state", "answer"),
    [(ConnectorState.UNAVAILABLE, "Unavailable"), (ConnectorState.PREPARING, "Occupied")],
)
def test_reserve_now_answers_as_the_live_charger_does(
    app: App, version: str, state: ConnectorState, answer: str
) -> None:
    env = simpy.Environment()
    des = DesCharger(
        env, DesCentral(env, app), "CP1", [7_400], epoch=DEFAULT_START, meter_interval_s=900, protocol=version
    )
    des.connected = True  # the link is up; no boot needed to answer a command
    des.connectors[1].state = state
    reply = des.receive(encode(Call("r1", "ReserveNow", _reserve_now(version))))
    assert reply is not None
    assert json.loads(reply)[2] == {"status": answer}

    live = VirtualCharger("CP1", "ws://unused", ManualClock(DEFAULT_START), [7_400], protocol=version)
    live.connectors[1].state = state
    assert live.reserve(1, 7, "TAG", EXPIRES) == answer
    assert des.connectors[1].reservation is None and live.connectors[1].reservation is None
