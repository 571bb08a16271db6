"""The DES charger answers the central system's commands by the live charger's rules."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, cast
from unittest.mock import ANY

import pytest
import simpy

from chargeshare.bootstrap import App, Config
from chargeshare.ocpp import V16, V21, V201, OcppVersion
from chargeshare.ocpp.frames import Call, encode
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.clock import ManualClock
from simulators.charger import VirtualCharger
from simulators.des.central import DesCentral
from simulators.des.charger import DesCharger
from simulators.firmware import ConnectorState
from simulators.live import DEFAULT_START
from simulators.power import Vehicle
from tests.conftest import SQLITE_MEMORY, build_for_tests

EXPIRES = DEFAULT_START + timedelta(minutes=30)


@pytest.fixture
def app() -> Iterator[App]:
    built = build_for_tests(Config(database_url=SQLITE_MEMORY, locks_enabled=False))
    try:
        yield built
    finally:
        built.close()


def _reserve_now(version: OcppVersion) -> dict[str, Any]:
    if version == V16:
        return {"connectorId": 1, "expiryDate": format_ts(EXPIRES), "idTag": "TAG", "reservationId": 7}
    return {
        "id": 7,
        "evseId": 1,
        "expiryDateTime": format_ts(EXPIRES),
        "idToken": {"idToken": "TAG", "type": "ISO14443"},
    }


@pytest.mark.parametrize("version", [V16, V201, V21])
@pytest.mark.parametrize(
    ("state", "answer"),
    [(ConnectorState.UNAVAILABLE, "Unavailable"), (ConnectorState.PREPARING, "Occupied")],
)
def test_reserve_now_answers_as_the_live_charger_does(
    app: App, version: OcppVersion, state: ConnectorState, answer: str
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


class RecordingCentral:
    """The central system's end of a DES link, answering each call with a canned payload and
    recording every frame the charger sends (DesCentral's surface, without a backend)."""

    def __init__(self, env: simpy.Environment, version: OcppVersion) -> None:
        self.env = env
        self.version = version
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.attached = 0

    def attach(self, charger: object, version: OcppVersion) -> None:
        self.attached += 1

    def detach(self, cp_id: str) -> None:
        pass

    def deliver(self, cp_id: str, text: str) -> str | None:
        frame = json.loads(text)
        if frame[0] != 2:
            return None
        uid, action, payload = frame[1], frame[2], frame[3]
        self.sent.append((action, payload))
        return json.dumps([3, uid, self._answer(action)])

    def _answer(self, action: str) -> dict[str, Any]:
        now = format_ts(DEFAULT_START)
        accepted = {"status": "Accepted"}
        if action == "BootNotification":
            return {"status": "Accepted", "currentTime": now, "interval": 300}
        if action == "Heartbeat":
            return {"currentTime": now}
        if self.version == V16:
            if action == "Authorize":
                return {"idTagInfo": accepted}
            if action == "StartTransaction":
                return {"transactionId": 41, "idTagInfo": accepted}
            return {}
        if action == "Authorize":
            return {"idTokenInfo": accepted}
        if action == "TransactionEvent":
            return {"idTokenInfo": accepted}
        return {}

    def later(self, fn: Callable[[], object]) -> None:
        def run(_event: simpy.Event) -> None:
            fn()

        self.env.timeout(0).callbacks.append(run)

    def actions(self) -> list[str]:
        return [a for a, _ in self.sent]


def _booted(
    version: OcppVersion, *, reservable: bool = True
) -> tuple[simpy.Environment, DesCharger, RecordingCentral]:
    env = simpy.Environment()
    central = RecordingCentral(env, version)
    des = DesCharger(
        env,
        cast(DesCentral, central),
        "CP1",
        [7_400],
        epoch=DEFAULT_START,
        meter_interval_s=900,
        protocol=version,
    )
    des.connect()
    central.sent.clear()
    return env, des, central


def _command(des: DesCharger, action: str, payload: dict[str, Any]) -> Any:
    reply = des.receive(encode(Call("c1", action, payload)))
    assert reply is not None
    frame = json.loads(reply)
    assert frame[0] == 3, frame  # a CALLRESULT, not a CALLERROR
    return frame[2]


def _car() -> Vehicle:
    return Vehicle(battery_wh=60_000, soc_wh=10_000, max_power_w=11_000)


@pytest.mark.parametrize("version", [V16, V201, V21])
def test_des_answers_every_command_the_live_charger_answers(version: OcppVersion) -> None:
    _env, des, _central = _booted(version)
    live = VirtualCharger("CP1", "ws://unused", ManualClock(DEFAULT_START), [7_400], protocol=version)
    assert set(des.csms_handlers()) == set(live.csms_handlers())


def test_an_inoperative_connector_is_reported_and_reserve_now_then_answers_unavailable() -> None:
    env, des, central = _booted(V16)
    assert _command(des, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}) == {
        "status": "Accepted"
    }
    env.run(until=1)
    assert central.sent == [
        (
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Unavailable", "timestamp": ANY},
        )
    ]
    assert _command(des, "ReserveNow", _reserve_now(V16)) == {"status": "Unavailable"}


def test_reserve_now_for_a_connector_type_the_charger_lacks_is_rejected() -> None:
    _env, des, _central = _booted(V201)
    payload = {**_reserve_now(V201), "connectorType": "cCCS2"}
    assert _command(des, "ReserveNow", payload) == {"status": "Rejected"}
    assert des.connectors[1].reservation is None


def test_a_hard_reset_ends_the_transaction_as_such_and_boots_again() -> None:
    env, des, central = _booted(V16)
    des.plug_in(1, "TAG", _car(), 20_000)
    env.run(until=600)
    assert _command(des, "Reset", {"type": "Hard"}) == {"status": "Accepted"}
    env.run(until=700)
    stops = [p for a, p in central.sent if a == "StopTransaction"]
    assert [(p["transactionId"], p["reason"]) for p in stops] == [(41, "HardReset")]
    assert central.actions()[-2:] == ["BootNotification", "StatusNotification"]
    assert des.resets == 1 and central.attached == 2


def test_a_reservation_that_lapses_is_told_in_2_0_1() -> None:
    env, des, central = _booted(V201)
    assert _command(des, "ReserveNow", _reserve_now(V201)) == {"status": "Accepted"}
    env.run(until=31 * 60)
    assert (
        "ReservationStatusUpdate",
        {"reservationId": 7, "reservationUpdateStatus": "Expired"},
    ) in central.sent
    assert des.connectors[1].state is ConnectorState.AVAILABLE


@pytest.mark.parametrize("version", [V201, V21])
def test_a_file_transfer_is_refused_with_the_versions_status(version: OcppVersion) -> None:
    _env, des, _central = _booted(version)
    firmware = {"location": "http://unused/fw.bin", "retrieveDateTime": format_ts(DEFAULT_START)}
    assert _command(des, "UpdateFirmware", {"requestId": 1, "firmware": firmware}) == {"status": "Rejected"}
    log = {"remoteLocation": "http://unused/log"}
    assert _command(des, "GetLog", {"requestId": 2, "logType": "DiagnosticsLog", "log": log}) == {
        "status": "Rejected"
    }


def test_a_1_6_firmware_update_is_told_failed_and_diagnostics_have_no_file() -> None:
    env, des, central = _booted(V16)
    update = {"location": "http://unused/fw.bin", "retrieveDate": format_ts(DEFAULT_START)}
    assert _command(des, "UpdateFirmware", update) == {}
    assert _command(des, "GetDiagnostics", {"location": "http://unused/log"}) == {}
    env.run(until=1)
    assert central.sent == [("FirmwareStatusNotification", {"status": "DownloadFailed"})]


def test_a_default_charging_profile_bounds_what_the_car_draws() -> None:
    env, des, central = _booted(V16)
    des.plug_in(1, "TAG", _car(), 20_000)
    profile = {
        "chargingProfileId": 5,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 3_700}],
        },
    }
    assert _command(des, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile}) == {
        "status": "Accepted"
    }
    env.run(until=3_600)
    des.unplug(1)
    [stop] = [p for a, p in central.sent if a == "StopTransaction"]
    assert stop["meterStop"] == 3_700  # an hour at the profile's limit, not the connector's 7.4 kW


@pytest.mark.parametrize("version", [V16, V201])
def test_a_car_unplugged_before_its_accepted_remote_start_runs_starts_nothing(version: OcppVersion) -> None:
    env, des, central = _booted(version)
    des.plug(1, _car(), 20_000)
    payload = (
        {"connectorId": 1, "idTag": "TAG"}
        if version == "1.6"
        else {"evseId": 1, "remoteStartId": 5, "idToken": {"idToken": "TAG", "type": "ISO14443"}}
    )
    assert _command(
        des, "RemoteStartTransaction" if version == "1.6" else "RequestStartTransaction", payload
    ) == {"status": "Accepted"}
    des.unplug(1)  # in the same instant, before the start that follows the answer
    env.run(until=60)
    assert "StartTransaction" not in central.actions() and "TransactionEvent" not in central.actions()
    assert des.connectors[1].state is ConnectorState.AVAILABLE and des.connectors[1].transaction is None
