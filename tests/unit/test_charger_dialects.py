"""The virtual charger's pure parts: its connector table, both dialects' payloads against the `ocpp`
library's schemas, its settings, and its charging profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.ocpp import V16, V21, V201, OcppVersion
from chargeshare.ocpp.connection import Outcome
from chargeshare.ocpp.frames import CALL, RemoteProtocolError, check_payload
from simulators.dialect import dialect_for, status_refusal
from simulators.evse import BootReason, Plugged, StopReason, Transaction, VirtualConnector
from simulators.firmware import TRANSITIONS, ConnectorState, FirmwareError, Trigger, step
from simulators.power import Vehicle
from simulators.settings import BY_COMPONENT_VARIABLE, BY_KEY, SetResult, Settings
from simulators.smart_charging import Kind, Period, Profile, ProfileBook, ProfileRefused, Purpose, TxContext

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TS = "2026-03-02T09:00:00.000Z"
VERSIONS = (V16, V201, V21)


@given(st.sampled_from(ConnectorState), st.sampled_from(Trigger))
def test_every_state_and_trigger_follows_the_table_or_raises(state: ConnectorState, trigger: Trigger) -> None:
    if (state, trigger) in TRANSITIONS:
        assert step(state, trigger) is TRANSITIONS[(state, trigger)]
    else:
        with pytest.raises(FirmwareError):
            step(state, trigger)


def test_only_an_idle_connector_goes_out_of_service_at_once() -> None:
    goes_now = {s for (s, t) in TRANSITIONS if t is Trigger.INOPERATIVE}
    assert goes_now == {ConnectorState.AVAILABLE, ConnectorState.RESERVED}
    assert (ConnectorState.UNAVAILABLE, Trigger.PLUG_IN) not in TRANSITIONS


def connector(state: ConnectorState, register_wh: int = 1_234) -> VirtualConnector:
    c = VirtualConnector(1, 7_400, state)
    c.meter.register_wh = register_wh
    c.plugged = Plugged("TAG-1", Vehicle(60_000, 30_000, 7_400), 5_000)
    return c


def transaction(wire_id: int | str | None) -> Transaction:
    return Transaction("0b8f7d1e-3d6a-4a8e-9c61-1f2a3b4c5d6e", "TAG-1", 1_000, T0, wire_id=wire_id)


def valid(version: OcppVersion, message: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    action, payload = message
    check_payload(action, payload, version, CALL, "t")  # raises on anything the schema refuses
    return payload


@pytest.mark.parametrize("version", VERSIONS)
@given(
    state=st.sampled_from(ConnectorState),
    reason=st.sampled_from(StopReason),
    boot=st.sampled_from(BootReason),
    register=st.integers(0, 10**9),
    power=st.integers(0, 350_000),
    reservation=st.none() | st.integers(1, 10**6),
)
def test_every_payload_each_dialect_builds_passes_its_schema(
    version: OcppVersion,
    state: ConnectorState,
    reason: StopReason,
    boot: BootReason,
    register: int,
    power: int,
    reservation: int | None,
) -> None:
    d = dialect_for(version)
    c = connector(state, register)
    tx = transaction(7 if version == V16 else "0b8f7d1e-3d6a-4a8e-9c61-1f2a3b4c5d6e")
    for message in (
        d.boot(boot),
        d.heartbeat(),
        d.status(c, TS),
        d.authorize("TAG-1"),
        d.started(c, tx, TS, reservation),
        d.meter(c, tx, TS, power),
        d.triggered_meter(c, tx, TS, power),
        d.triggered_meter(c, None, TS, power),
        d.ended(c, tx, TS, reason),
    ):
        valid(version, message)
    changed = d.charging_state_changed(c, tx, TS)
    if changed is not None:
        valid(version, changed)
    with pytest.raises(RemoteProtocolError):
        check_payload("MeterValues", d.bad_meter_values(), version, CALL, "t")


def test_201_transaction_events_carry_the_chargers_id_a_rising_seq_no_and_wh_readings() -> None:
    d = dialect_for(V201)
    c = connector(ConnectorState.CHARGING, 2_500)
    tx = Transaction("tx-1", "TAG-1", 1_000, T0)
    started = valid(V201, d.started(c, tx, TS, None))
    assert d.start_accepted(
        tx, Outcome("u", "TransactionEvent", payload={"idTokenInfo": {"status": "Accepted"}})
    )
    updated = valid(V201, d.meter(c, tx, TS, 7_400))
    ended = valid(V201, d.ended(c, tx, TS, StopReason.REMOTE))
    assert [e["eventType"] for e in (started, updated, ended)] == ["Started", "Updated", "Ended"]
    assert [e["seqNo"] for e in (started, updated, ended)] == [0, 1, 2]
    assert {e["transactionInfo"]["transactionId"] for e in (started, updated, ended)} == {"tx-1"}
    assert started["idToken"] == {"idToken": "TAG-1", "type": "ISO14443"}
    assert started["triggerReason"] == "Authorized" and "idToken" not in updated
    energy = [
        (sv["value"], sv["unitOfMeasure"]["unit"])
        for e in (started, updated, ended)
        for sv in e["meterValue"][0]["sampledValue"]
        if sv["measurand"] == "Energy.Active.Import.Register"
    ]
    assert energy == [(1_000, "Wh"), (2_500, "Wh"), (2_500, "Wh")]
    assert (ended["triggerReason"], ended["transactionInfo"]["stoppedReason"]) == ("RemoteStop", "Remote")
    queued = d.mark_offline("TransactionEvent", ended)
    assert queued["offline"] is True and "offline" not in ended
    assert d.mark_offline("Heartbeat", {}) == {}


def test_201_folds_plugged_states_onto_occupied_and_refused_cards_are_not_accepted() -> None:
    d = dialect_for(V201)
    folded = {s: valid(V201, d.status(connector(s), TS))["connectorStatus"] for s in ConnectorState}
    assert folded[ConnectorState.AVAILABLE] == "Available"
    assert folded[ConnectorState.UNAVAILABLE] == "Unavailable"
    assert {
        folded[s] for s in (ConnectorState.PREPARING, ConnectorState.CHARGING, ConnectorState.FINISHING)
    } == {"Occupied"}
    tx = Transaction("tx-2", "TAG-1", 0, T0)
    blocked = Outcome("u", "TransactionEvent", payload={"idTokenInfo": {"status": "Blocked"}})
    assert not d.start_accepted(tx, blocked) and tx.wire_id == "tx-2"  # it exists: it must be ended


def test_21_says_what_201_says_under_its_own_subprotocol() -> None:
    d21, d201 = dialect_for(V21), dialect_for(V201)
    assert (d21.version, d21.subprotocol) == (V21, "ocpp2.1")
    c = connector(ConnectorState.CHARGING, 5_000)
    tx, same = transaction("tx-21"), transaction("tx-21")
    assert d21.started(c, tx, TS, 4) == d201.started(c, same, TS, 4)
    assert d21.ended(c, tx, TS, StopReason.LOCAL) == d201.ended(c, same, TS, StopReason.LOCAL)
    # It answers every command 2.0.1's dialect does (the CSMS finds nothing missing), and 2.1's
    # permission to discharge.
    words21, words201 = d21.handlers(cast(Any, None)).keys(), d201.handlers(cast(Any, None)).keys()
    assert words21 - words201 == {"NotifyAllowedEnergyTransfer"} and words201 <= words21


def test_16_takes_the_transaction_id_the_csms_assigns() -> None:
    d = dialect_for(V16)
    tx = Transaction("local", "TAG-1", 0, T0)
    accepted = Outcome(
        "u", "StartTransaction", payload={"transactionId": 42, "idTagInfo": {"status": "Accepted"}}
    )
    assert d.start_accepted(tx, accepted) and tx.wire_id == 42
    stop = valid(V16, d.ended(connector(ConnectorState.FINISHING), tx, TS, StopReason.SOFT_RESET))
    assert (stop["transactionId"], stop["reason"]) == (42, "SoftReset")
    assert d.mark_offline("StopTransaction", stop) == stop  # 1.6 cannot say it was held back


@pytest.mark.parametrize(
    ("action", "version", "refusal"),
    [
        ("RemoteStartTransaction", V16, {"status": "Rejected"}),
        ("Reset", V201, {"status": "Rejected"}),
        ("ChangeConfiguration", V16, {"status": "Rejected"}),
        ("GetConfiguration", V16, None),  # no status to refuse with: a CALLERROR instead
    ],
)
def test_refusals_come_from_the_response_schema(
    action: str, version: OcppVersion, refusal: dict[str, str] | None
) -> None:
    assert status_refusal(action, version) == refusal


def test_settings_refuse_read_only_keys_bad_values_and_unknown_names() -> None:
    s = Settings(connectors=2)
    assert (
        s.set(BY_KEY["HeartbeatInterval"], "120") is SetResult.ACCEPTED
        and s.number("heartbeat_interval_s") == 120
    )
    assert s.set(BY_KEY["HeartbeatInterval"], "soon") is SetResult.REJECTED
    assert s.set(BY_KEY["NumberOfConnectors"], "9") is SetResult.REJECTED and s.get("connectors") == "2"
    assert s.set(BY_KEY.get("NoSuchKey"), "1") is SetResult.UNKNOWN
    # One store, two names: the 2.0.1 variable is the same setting as the 1.6 key.
    assert (
        BY_COMPONENT_VARIABLE[("SampledDataCtrlr", "TxUpdatedInterval")] is BY_KEY["MeterValueSampleInterval"]
    )


def profile(
    pid: int,
    purpose: Purpose,
    limit: float,
    *,
    unit: str = "W",
    level: int = 0,
    connector_no: int = 1,
    **kw: Any,
) -> Profile:
    periods = kw.pop("periods", (Period(0, limit),))
    return Profile(pid, connector_no, level, purpose, kw.pop("kind", Kind.ABSOLUTE), unit, periods, T0, **kw)


def test_the_highest_stack_level_wins_and_the_charger_maximum_caps_it() -> None:
    book = ProfileBook()
    book.install(profile(1, Purpose.TX_DEFAULT, 6_000), None)
    book.install(profile(2, Purpose.TX_DEFAULT, 4_000, level=2), None)
    assert book.limit_w(1, T0, None, 7_400, 1) == 4_000
    book.install(profile(3, Purpose.CHARGER_MAX, 3_000, connector_no=0), None)
    assert book.limit_w(1, T0, None, 7_400, 1) == 3_000
    assert book.clear(profile_id=3) and not book.clear(profile_id=3)
    assert book.limit_w(1, T0, None, 7_400, 1) == 4_000


def test_amps_become_watts_per_phase_and_a_tx_profile_lives_with_its_transaction() -> None:
    book = ProfileBook()
    tx = TxContext("tx-1", T0)
    with pytest.raises(ProfileRefused):
        book.install(profile(1, Purpose.TX, 10, unit="A"), None)  # no transaction running
    book.install(profile(1, Purpose.TX, 10, unit="A", kind=Kind.RELATIVE), tx)
    assert book.limit_w(1, T0 + timedelta(minutes=5), tx, 22_000, 3) == 6_900
    book.end_transaction("tx-1")
    assert book.limit_w(1, T0, None, 22_000, 3) == 22_000


@given(st.lists(st.tuples(st.integers(0, 7_200), st.integers(0, 22_000)), min_size=1, max_size=6))
@pytest.mark.slow
def test_the_composite_schedule_says_what_the_limit_will_be(steps: list[tuple[int, int]]) -> None:
    periods = tuple(
        Period(start, float(w)) for start, w in sorted({0: steps[0][1], **dict(steps[1:])}.items())
    )
    book = ProfileBook()
    book.install(profile(1, Purpose.TX_DEFAULT, 0, periods=periods, start=T0), None)
    composite = book.composite(1, T0, 3_600, None, 11_000, 3)
    assert composite[0][0] == 0
    for i, (offset, w) in enumerate(composite):
        until = composite[i + 1][0] if i + 1 < len(composite) else 3_600
        for t in {offset, (offset + until) // 2, until - 1}:
            assert book.limit_w(1, T0 + timedelta(seconds=t), None, 11_000, 3) == w
