"""The engine-free charger core, driven by hand: what it answers, what it queues, what it says."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chargeshare.ocpp import V16, V21, V201, OcppVersion
from chargeshare.ocpp.connection import Outcome
from chargeshare.ocpp.frames import CALL, CALLRESULT, check_payload
from chargeshare.services.clock import ManualClock
from simulators.charger_core import ChargerCore, Route
from simulators.dialect import Message, dialect_for
from simulators.evse import PlugRefused, Requested, ResetKind, StopReason, Transaction, VirtualConnector
from simulators.firmware import ConnectorState
from simulators.power import Vehicle
from simulators.settings import (
    BY_COMPONENT_VARIABLE,
    BY_KEY,
    EVSE_SUPPLY_PHASES,
    HEARTBEAT_INTERVAL,
    SetResult,
)
from simulators.smart_charging import Profile
from tests.conftest import T0

EXPIRES = T0 + timedelta(minutes=30)


class Recorded(ChargerCore):
    """A driver that records what the core asks of it instead of sending anything."""

    def __init__(self, protocol: OcppVersion = V16, connectors: int = 2) -> None:
        self.manual = ManualClock(T0)
        super().__init__(
            "CORE1", self.manual, dialect_for(protocol), [7_400] * connectors, meter_interval_s=60
        )
        self.connected = True
        self.sent: list[Message] = []
        self.resets: list[ResetKind] = []
        self.starts: list[tuple[int, str]] = []
        self.stops: list[tuple[int, StopReason]] = []
        self._ids = 0

    def advance_energy(self) -> None:
        pass  # no car draws power in these tests

    def follow_up(self, message: Message) -> None:
        self.sent.append(message)

    def start_later(
        self, c: VirtualConnector, id_tag: str, remote_start_id: int | None, profile: Profile | None
    ) -> None:
        self.starts.append((c.no, id_tag))

    def stopped_later(
        self, c: VirtualConnector, tx: Transaction, reason: StopReason, status: Message
    ) -> None:
        self.stops.append((c.no, reason))
        self.sent += [self.stop_message(c, tx, reason), status]

    def reset_later(self, kind: ResetKind) -> None:
        self.resets.append(kind)

    def boot_later(self) -> None:
        self.sent.append(("BootNotification", {}))

    def next_transaction_id(self) -> str:
        self._ids += 1
        return f"tx{self._ids}"

    def running(self, connector_no: int, wire_id: int) -> Transaction:
        """Plug a car in and have the CSMS accept its transaction."""
        c = self.connectors[connector_no]
        self.plug(connector_no, Vehicle(60_000, 10_000, 7_400), 5_000, id_tag="TAG")
        tx = self.new_transaction(c, "TAG")
        answer = {"transactionId": wire_id, "idTagInfo": {"status": "Accepted"}}
        assert self.take_start(c, tx, Outcome("u", "StartTransaction", payload=answer)) is True
        return tx


def actions(sent: list[Message]) -> list[str]:
    return [a for a, _ in sent]


# ---- ReserveNow ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "answer"),
    [
        (ConnectorState.AVAILABLE, "Accepted"),
        (ConnectorState.UNAVAILABLE, "Unavailable"),
        (ConnectorState.PREPARING, "Occupied"),
        (ConnectorState.CHARGING, "Occupied"),
        (ConnectorState.RESERVED, "Occupied"),
    ],
)
def test_reserve_now_answers_by_the_connectors_state(state: ConnectorState, answer: str) -> None:
    core = Recorded()
    core.connectors[1].state = state
    assert core.reserve(1, 7, "TAG", EXPIRES) == answer
    reported = [p["status"] for a, p in core.sent if a == "StatusNotification"]
    assert reported == (["Reserved"] if answer == "Accepted" else [])


def test_reserve_now_for_a_connector_it_lacks_is_rejected_and_any_connector_takes_a_free_one() -> None:
    core = Recorded()
    assert core.reserve(9, 7, "TAG", EXPIRES) == "Rejected"
    core.connectors[1].state = ConnectorState.UNAVAILABLE
    assert core.reserve(None, 8, "TAG", EXPIRES) == "Accepted"
    assert core.connectors[2].state is ConnectorState.RESERVED
    assert core.reserve(None, 9, "TAG", EXPIRES) == "Occupied"  # nothing free is left


def test_cancel_frees_the_connector_once_and_an_expired_reservation_lapses() -> None:
    core = Recorded()
    core.reserve(1, 7, "TAG", EXPIRES)
    assert core.cancel_reservation(7) is True
    assert core.connectors[1].state is ConnectorState.AVAILABLE
    assert core.cancel_reservation(7) is False
    core.reserve(2, 8, "TAG", EXPIRES)
    assert core.expire_due() == []
    core.manual.advance(30 * 60)
    [(c, r)] = core.expire_due()
    assert (c.no, r.reservation_id, c.state) == (2, 8, ConnectorState.AVAILABLE)


# ---- plug-in ------------------------------------------------------------------------------------
def test_a_reserved_connector_takes_its_own_driver_only_and_the_car_takes_up_the_reservation() -> None:
    core = Recorded()
    core.reserve(1, 7, "MINE", EXPIRES)
    car = Vehicle(60_000, 10_000, 7_400)
    with pytest.raises(PlugRefused, match="reserved for another driver"):
        core.plug(1, car, 5_000, id_tag="OTHER")
    plugged = core.plug(1, car, 5_000, id_tag="MINE")
    assert plugged.reservation_id == 7 and core.connectors[1].reservation is None
    assert core.connectors[1].state is ConnectorState.PREPARING
    with pytest.raises(PlugRefused, match="in use"):
        core.plug(1, car, 5_000, id_tag="MINE")


def test_an_offline_charger_refuses_a_card() -> None:
    core = Recorded()
    core.connected = False
    with pytest.raises(PlugRefused, match="offline"):
        core.plug(1, Vehicle(60_000, 10_000, 7_400), 5_000, id_tag="TAG")


def test_an_inoperative_change_waits_for_the_car_to_leave() -> None:
    core = Recorded()
    tx = core.running(1, 41)
    assert core.change_availability(1, operative=False) == "Scheduled"
    assert core.remote_stop(tx) is True
    core.unplugged(core.connectors[1])
    assert core.connectors[1].state is ConnectorState.UNAVAILABLE


# ---- the offline queue --------------------------------------------------------------------------
def test_offline_transaction_messages_queue_in_order_and_the_rest_is_dropped() -> None:
    core = Recorded()
    assert core.route("MeterValues") is Route.SEND
    core.connected = False
    assert core.route("StatusNotification") is Route.DROP
    assert core.route("Heartbeat") is Route.DROP
    for n in (1, 2, 3):
        assert core.route("MeterValues") is Route.QUEUE
        core.enqueue(("MeterValues", {"n": n}))
    core.connected = True
    # A message while the queue still waits joins its end, so the order holds.
    assert core.route("StopTransaction") is Route.QUEUE
    core.enqueue(("StopTransaction", {"n": 4}))
    assert core.route("StatusNotification") is Route.SEND
    replayed = []
    while (head := core.replay_head()) is not None:
        if not core.replayed(Outcome("u", head[0], payload={})):
            break
        replayed.append(head[1]["n"])
    assert replayed == [1, 2, 3, 4] and core.queue == []


def test_an_unanswered_replay_keeps_its_place_at_the_head() -> None:
    core = Recorded()
    core.enqueue(("MeterValues", {"n": 1}))
    core.enqueue(("MeterValues", {"n": 2}))
    assert not core.replayed(Outcome("u", "MeterValues", error="Timeout"))
    assert core.replay_head() == ("MeterValues", {"n": 1})
    core.silent = True
    assert core.replay_head() is None  # silent: nothing is sent, not even the replay


def test_a_failed_transaction_message_waits_the_retry_interval_times_its_sendings_so_far() -> None:
    core = Recorded()
    failed = Outcome("u", "StopTransaction", error="InternalError")
    # OCPP 1.6's own example: 3 attempts, 60 s interval: wait 60 s, then 120 s, then give up.
    assert [core.retry_after_s("StopTransaction", failed, n) for n in (1, 2, 3)] == [60.0, 120.0, None]
    unanswered = Outcome("u", "MeterValues", error="Timeout")
    assert core.retry_after_s("MeterValues", unanswered, 1) == 60.0
    assert core.retry_after_s("StopTransaction", Outcome("u", "StopTransaction", payload={}), 1) is None
    assert core.retry_after_s("StatusNotification", Outcome("u", "x", error="InternalError"), 1) is None
    core.change_setting(BY_KEY["TransactionMessageRetryInterval"], "15")
    core.change_setting(BY_KEY["TransactionMessageAttempts"], "4")
    assert [core.retry_after_s("StopTransaction", failed, n) for n in (1, 2, 3, 4)] == [
        15.0,
        30.0,
        45.0,
        None,
    ]


def test_2_x_names_the_retry_interval_message_attempt_interval() -> None:
    core = Recorded(V201)
    interval = BY_COMPONENT_VARIABLE[("OCPPCommCtrlr", "MessageAttemptInterval")]
    assert core.change_setting(interval, "0") is SetResult.ACCEPTED
    failed = Outcome("u", "TransactionEvent", error="InternalError")
    assert core.retry_after_s("TransactionEvent", failed, 1) == 0.0  # sent again at once
    assert core.change_setting(interval, "-1") is SetResult.REJECTED


def variables(core: Recorded, action: str, data: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(attributeStatus, attributeValue) of each item of a Get/SetVariables, as the charger answers."""
    word = "getVariable" if action == "GetVariables" else "setVariable"
    answer = core.csms_handlers()[action]({f"{word}Data": data})
    return [(r["attributeStatus"], r.get("attributeValue")) for r in answer[f"{word}Result"]]


def at(evse: dict[str, int], component: str, variable: str, value: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"component": {"name": component, "evse": evse}, "variable": {"name": variable}}
    return d if value is None else {**d, "attributeValue": value}


@pytest.mark.parametrize("protocol", [V201, V21])
def test_a_2_x_component_named_with_an_evse_is_the_one_at_that_evse(protocol: OcppVersion) -> None:
    """Only the EVSE's own `EVSE` component is at an EVSE here, its variables read-only; the
    controllers are the station's, at no EVSE, and an EVSE or connector it lacks is unknown."""
    core = Recorded(protocol)
    core.wire_phases({1: 1, 2: 3})
    assert variables(
        core,
        "GetVariables",
        [
            at({"id": 1}, "EVSE", "SupplyPhases"),
            at({"id": 2, "connectorId": 1}, "EVSE", "SupplyPhases"),
            at({"id": 2, "connectorId": 2}, "EVSE", "SupplyPhases"),
            at({"id": 9}, "EVSE", "SupplyPhases"),
        ],
    ) == [("Accepted", "1"), ("Accepted", "3"), ("UnknownComponent", None), ("UnknownComponent", None)]
    assert variables(
        core,
        "GetVariables",
        [
            at({"id": 1}, "OCPPCommCtrlr", "HeartbeatInterval"),
            at({"id": 1}, "EVSE", "Nope"),
            at({"id": 0}, "EVSE", "SupplyPhases"),
        ],
    ) == [("UnknownComponent", None), ("UnknownVariable", None), ("UnknownComponent", None)]
    assert variables(
        core,
        "SetVariables",
        [
            at({"id": 1}, "OCPPCommCtrlr", "HeartbeatInterval", "30"),
            at({"id": 1}, "EVSE", "SupplyPhases", "3"),
            at({"id": 9}, "EVSE", "Count", "8"),
            at({"id": 2}, "EVSE", "Nope", "1"),
        ],
    ) == [
        ("UnknownComponent", None),
        ("Rejected", None),
        ("UnknownComponent", None),
        ("UnknownVariable", None),
    ]
    # Nothing changed, at the station or at the EVSE; without an EVSE it is the station's as before.
    assert core.settings.get(HEARTBEAT_INTERVAL) == "300"
    assert core.settings.evse_values[(1, EVSE_SUPPLY_PHASES)] == "1"
    heartbeat = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    assert variables(core, "SetVariables", [{**heartbeat, "attributeValue": "30"}]) == [("Accepted", None)]
    assert variables(core, "GetVariables", [heartbeat]) == [("Accepted", "30")]
    # An EVSE it has, whose phases it does not say, has the component without the variable.
    core.wire_phases(3, said=False)
    assert variables(core, "GetVariables", [at({"id": 1}, "EVSE", "SupplyPhases")]) == [
        ("UnknownVariable", None)
    ]


def answered(core: Recorded, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The charger's answer to a command, and whatever it sent after it, checked against the schemas."""
    core.sent.clear()
    check_payload(action, payload, core.dialect.version, CALL, "c")
    answer = core.csms_handlers()[action](payload)
    check_payload(action, answer, core.dialect.version, CALLRESULT, "c")
    for sent, body in core.sent:
        check_payload(sent, body, core.dialect.version, CALL, "s")
    return answer


def reported(core: Recorded, action: str, payload: dict[str, Any]) -> list[tuple[str, int | None, str]]:
    """(component, its EVSE id, variable) of each item of the NotifyReport that follows a report."""
    assert answered(core, action, {"requestId": 1, **payload}) == {"status": "Accepted"}
    [(sent, body)] = core.sent
    assert sent == "NotifyReport"
    return [
        (d["component"]["name"], d["component"].get("evse", {}).get("id"), d["variable"]["name"])
        for d in body["reportData"]
    ]


def evse_report(core: Recorded, evse_id: int) -> dict[str, dict[str, Any]]:
    """Each variable a full report gives for the EVSE's own `EVSE` component."""
    assert answered(core, "GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"})
    return {
        d["variable"]["name"]: d
        for d in core.sent[0][1]["reportData"]
        if d["component"] == {"name": "EVSE", "evse": {"id": evse_id}}
    }


EVSE_VARIABLES = ["AvailabilityState", "Available", "Power", "SupplyPhases"]


@pytest.mark.parametrize("protocol", [V201, V21])
def test_a_2_x_full_report_gives_each_evse_its_own_component_as_get_variables_reads_it(
    protocol: OcppVersion,
) -> None:
    core = Recorded(protocol)
    core.wire_phases({1: 1, 2: 3})
    core.connectors[2].state = ConnectorState.UNAVAILABLE
    for evse_id, state, phases in [(1, "Available", "1"), (2, "Unavailable", "3")]:
        found = evse_report(core, evse_id)
        assert sorted(found) == EVSE_VARIABLES
        power = found["Power"]
        assert power["variableCharacteristics"]["maxLimit"] == 7_400
        assert power["variableCharacteristics"]["unit"] == "W"
        values = {v: d["variableAttribute"][0]["value"] for v, d in found.items()}
        assert values == {
            "AvailabilityState": state,
            "Available": "true",
            "Power": "0",
            "SupplyPhases": phases,
        }
        assert {d["variableAttribute"][0]["mutability"] for d in found.values()} == {"ReadOnly"}
        # What the report says is what GetVariables answers for the same component and variable.
        asked = [at({"id": evse_id}, "EVSE", v) for v in EVSE_VARIABLES]
        assert variables(core, "GetVariables", asked) == [("Accepted", values[v]) for v in EVSE_VARIABLES]
    # Read-only, so not configuration; an EVSE whose phases it does not say reports none.
    configuration = reported(core, "GetBaseReport", {"reportBase": "ConfigurationInventory"})
    assert not [r for r in configuration if r[1] is not None]
    core.wire_phases(3, said=False)
    assert sorted(evse_report(core, 1)) == ["AvailabilityState", "Available", "Power"]


@pytest.mark.parametrize("protocol", [V201, V21])
def test_a_2_x_custom_report_selects_the_components_at_an_evse(protocol: OcppVersion) -> None:
    core = Recorded(protocol)
    core.wire_phases({1: 1, 2: 3})

    def asked(*wanted: dict[str, Any]) -> dict[str, Any]:
        return {"componentVariable": list(wanted)}

    one = asked({"component": {"name": "EVSE", "evse": {"id": 1}}})
    assert reported(core, "GetReport", one) == [("EVSE", 1, v) for v in EVSE_VARIABLES]
    power = asked(
        {"component": {"name": "EVSE", "evse": {"id": 2, "connectorId": 1}}, "variable": {"name": "Power"}}
    )
    assert reported(core, "GetReport", power) == [("EVSE", 2, "Power")]
    # Without an EVSE it is the component wherever it is: the station's and each EVSE's.
    everywhere = reported(core, "GetReport", asked({"component": {"name": "EVSE"}}))
    assert everywhere == [("EVSE", None, "Count")] + [("EVSE", n, v) for n in (1, 2) for v in EVSE_VARIABLES]
    # Every EVSE component is available and none has a problem, as the station's components.
    available = reported(core, "GetReport", {"componentCriteria": ["Available"]})
    assert [r for r in available if r[1] is not None] == [
        ("EVSE", n, v) for n in (1, 2) for v in EVSE_VARIABLES
    ]
    # What is not there at an EVSE is nothing to report.
    for nothing in [
        asked({"component": {"name": "EVSE", "evse": {"id": 9}}}),
        asked({"component": {"name": "EVSE", "evse": {"id": 1, "connectorId": 2}}}),
        asked({"component": {"name": "OCPPCommCtrlr", "evse": {"id": 1}}}),
        asked({"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Count"}}),
        {"componentCriteria": ["Problem"]},
    ]:
        assert answered(core, "GetReport", {"requestId": 2, **nothing}) == {"status": "EmptyResultSet"}
        assert core.sent == []


def monitor(component: dict[str, Any], variable: str) -> dict[str, Any]:
    return {
        "value": 10,
        "type": "Delta",
        "severity": 5,
        "component": component,
        "variable": {"name": variable},
    }


@pytest.mark.parametrize("protocol", [V201, V21])
def test_a_2_x_monitor_at_an_evse_is_on_that_evses_own_component(protocol: OcppVersion) -> None:
    """As SetVariables answers: only the EVSE's own `EVSE` component is at an EVSE."""
    core = Recorded(protocol)
    core.wire_phases({1: 1, 2: 3})
    station = {"name": "OCPPCommCtrlr"}
    data = [
        monitor({**station, "evse": {"id": 1}}, "HeartbeatInterval"),
        monitor({"name": "EVSE", "evse": {"id": 1}}, "Power"),
        monitor({"name": "EVSE", "evse": {"id": 9}}, "Power"),
        monitor({"name": "EVSE", "evse": {"id": 2, "connectorId": 2}}, "Power"),
        monitor({"name": "EVSE", "evse": {"id": 2}}, "HeartbeatInterval"),
        monitor({"name": "EVSE", "evse": {"id": 2, "connectorId": 1}}, "AvailabilityState"),
        monitor(station, "HeartbeatInterval"),
    ]
    answer = answered(core, "SetVariableMonitoring", {"setMonitoringData": data})
    assert [(r["status"], r.get("id")) for r in answer["setMonitoringResult"]] == [
        ("UnknownComponent", None),
        ("Accepted", 1),
        ("UnknownComponent", None),
        ("UnknownComponent", None),
        ("UnknownVariable", None),
        ("Accepted", 2),
        ("Accepted", 3),
    ]

    def monitored(*wanted: dict[str, Any]) -> list[int]:
        answer = answered(core, "GetMonitoringReport", {"requestId": 4, "componentVariable": list(wanted)})
        if answer == {"status": "EmptyResultSet"}:
            return []
        return [m["variableMonitoring"][0]["id"] for m in core.sent[0][1]["monitor"]]

    def evse(evse: dict[str, int], variable: str | None = None) -> dict[str, Any]:
        said: dict[str, Any] = {"component": {"name": "EVSE", "evse": evse}}
        return said if variable is None else {**said, "variable": {"name": variable}}

    assert monitored(evse({"id": 1}, "Power")) == [1]
    assert monitored(evse({"id": 2})) == [2]
    assert monitored(evse({"id": 2, "connectorId": 1}, "AvailabilityState")) == [2]
    assert monitored({"component": {"name": "EVSE"}}) == [1, 2]
    assert monitored({"component": station}) == [3]
    assert (
        monitored(evse({"id": 9}), evse({"id": 2}, "Power"), {"component": {**station, "evse": {"id": 1}}})
        == []
    )


def test_2_0_1_marks_queued_transaction_events_as_sent_offline() -> None:
    core = Recorded(V201)
    core.connected = False
    core.enqueue(("TransactionEvent", {"eventType": "Updated"}))
    assert core.queue[0].payload["offline"] is True


# ---- power cuts and resets ----------------------------------------------------------------------
def test_a_power_cut_queues_each_transactions_stop_with_reason_reboot() -> None:
    core = Recorded()
    core.running(1, 41)
    core.running(2, 42)
    core.connected = False
    core.power_cut(lose_queue=False)
    assert [(q.action, q.payload["transactionId"], q.payload["reason"]) for q in core.queue] == [
        ("StopTransaction", 41, "Reboot"),
        ("StopTransaction", 42, "Reboot"),
    ]
    assert all(c.transaction is None for c in core.connectors.values())
    assert {c.state for c in core.connectors.values()} == {ConnectorState.FINISHING}


def test_a_power_cut_that_loses_the_queue_loses_what_waited_too() -> None:
    core = Recorded()
    core.running(1, 41)
    core.enqueue(("MeterValues", {"connectorId": 1}))
    core.power_cut(lose_queue=True)
    assert core.queue == [] and core.connectors[1].transaction is None


def test_a_reset_on_idle_waits_for_the_last_transaction() -> None:
    core = Recorded()
    tx = core.running(1, 41)
    assert core.reset(ResetKind.ON_IDLE) == "Scheduled" and core.resets == []
    core.remote_stop(tx)
    core._reset_if_idle()
    assert core.resets == [ResetKind.ON_IDLE]
    assert core.reset(ResetKind.HARD) == "Accepted" and core.resets[-1] is ResetKind.HARD


def test_a_hard_reset_ends_each_transaction_with_its_reason() -> None:
    core = Recorded()
    core.running(1, 41)
    ended = core.end_for_reset(ResetKind.HARD)
    assert [(c.no, reason) for c, _, reason in ended] == [(1, StopReason.HARD_RESET)]
    assert core.connectors[1].transaction is None


# ---- other commands -----------------------------------------------------------------------------
def test_remote_start_needs_a_plugged_car_and_remote_stop_a_running_transaction() -> None:
    core = Recorded()
    assert core.remote_start(1, "TAG") is False
    core.plug(1, Vehicle(60_000, 10_000, 7_400), 5_000)
    assert core.remote_start(None, "TAG") is True and core.starts == [(1, "TAG")]
    assert core.remote_stop(None) is False
    tx = core.running(2, 42)
    assert core.remote_stop(tx) is True
    assert core.stops == [(2, StopReason.REMOTE)]
    assert actions(core.sent)[-2:] == ["StopTransaction", "StatusNotification"]


@pytest.mark.parametrize(("protocol", "answer"), [(V16, {"transactionId": 77}), (V201, {})])
def test_a_start_answered_after_the_car_left_is_ended_at_once(
    protocol: OcppVersion, answer: dict[str, Any]
) -> None:
    core = Recorded(protocol)
    c = core.connectors[1]
    core.plug(1, Vehicle(60_000, 10_000, 7_400), 5_000, id_tag="TAG")
    tx = core.new_transaction(c, "TAG")
    core.unplugged(c)  # the car leaves while the start is in flight
    if protocol == "1.6":
        answer["idTagInfo"] = {"status": "Accepted"}
    outcome = Outcome("u", "StartTransaction", payload=answer)
    assert core.take_start(c, tx, outcome) is None and c.transaction is None
    stop = core.abandoned_start(c, tx, outcome)
    assert stop is not None
    if protocol == "1.6":
        assert stop[0] == "StopTransaction" and stop[1]["transactionId"] == 77
    else:
        assert (stop[0], stop[1]["eventType"]) == ("TransactionEvent", "Ended")
        assert stop[1]["transactionInfo"]["transactionId"] == tx.local_id


def test_a_1_6_start_refused_after_the_car_left_needs_no_stop() -> None:
    core = Recorded()
    c = core.connectors[1]
    core.plug(1, Vehicle(60_000, 10_000, 7_400), 5_000, id_tag="TAG")
    tx = core.new_transaction(c, "TAG")
    core.unplugged(c)
    refused = Outcome(
        "u", "StartTransaction", payload={"transactionId": 0, "idTagInfo": {"status": "Blocked"}}
    )
    assert core.take_start(c, tx, refused) is None
    assert core.abandoned_start(c, tx, refused) is None


def test_a_start_answered_after_another_car_plugged_in_is_not_taken_by_it() -> None:
    core = Recorded()
    c = core.connectors[1]
    core.plug(1, Vehicle(60_000, 10_000, 7_400), 5_000, id_tag="TAG")
    tx = core.new_transaction(c, "TAG")
    core.unplugged(c)
    core.plug(1, Vehicle(60_000, 10_000, 7_400), 5_000, id_tag="OTHER")
    answer = {"transactionId": 77, "idTagInfo": {"status": "Accepted"}}
    assert core.take_start(c, tx, Outcome("u", "StartTransaction", payload=answer)) is None
    assert c.transaction is None and c.state is ConnectorState.PREPARING


def test_a_repeated_remote_start_while_the_first_is_announced_is_refused() -> None:
    core = Recorded()
    c = core.connectors[1]
    core.plug(1, Vehicle(60_000, 10_000, 7_400), 5_000)
    assert core.remote_start(1, "TAG") is True
    core.new_transaction(c, "TAG")  # the first start is on the wire
    assert core.remote_start(1, "TAG") is False
    assert core.starts == [(1, "TAG")]


def test_trigger_answers_and_says_what_was_asked_after_the_answer() -> None:
    core = Recorded()
    assert core.trigger(Requested.STATUS, 9) == "Rejected"
    assert core.trigger(Requested.TRANSACTION_EVENT, None) == "Rejected"  # none runs
    assert core.trigger(Requested.HEARTBEAT, None) == "Accepted"
    assert core.trigger(Requested.STATUS, 2) == "Accepted"
    assert actions(core.sent) == ["Heartbeat", "StatusNotification"]
