from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.ocpp.connection import Connection
from chargeshare.ocpp.frames import (
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    Call,
    CallError,
    CallResult,
    RemoteProtocolError,
    encode,
    parse,
)
from tests.conftest import examples


def boot_handler(p: dict[str, Any]) -> dict[str, Any]:
    return {"status": "Accepted", "currentTime": "2026-01-01T00:00:00.000Z", "interval": 300}


def conn(version: OcppVersion = V16) -> Connection:
    return Connection(version, {"BootNotification": boot_handler})


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", "FormatViolation"),
        ("{}", "RpcFrameworkError"),
        ("[]", "RpcFrameworkError"),
        ('[9, "1", "X", {}]', "MessageTypeNotSupported"),
        ('[2, 5, "BootNotification", {}]', "RpcFrameworkError"),
        ('[2, "1", "BootNotification"]', "FormatViolation"),
        ('[3, "1"]', "FormatViolation"),
        ("[" + " " * MAX_FRAME_BYTES + "]", "FormatViolation"),
    ],
)
def test_parse_errors(text: str, code: str) -> None:
    with pytest.raises(RemoteProtocolError) as err:
        parse(text)
    assert err.value.code == code


def test_round_trip() -> None:
    for f in (Call("1", "Heartbeat", {}), CallResult("2", {"a": 1}), CallError("3", "GenericError", "x", {})):
        assert parse(encode(f)) == f


@given(st.text(min_size=1, max_size=36))
def test_an_empty_result_is_encoded_as_any_other_frame(unique_id: str) -> None:
    text = encode(CallResult(unique_id, {}))
    assert text == json.dumps([3, unique_id, {}], separators=(",", ":"))
    assert parse(text) == CallResult(unique_id, {})


def reply(c: Connection, text: str | bytes) -> list[Any]:
    r = c.receive(text)
    assert r.reply is not None
    return list(json.loads(r.reply))


def test_valid_call_gets_a_result() -> None:
    frame = reply(
        conn(), json.dumps([2, "a1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
    )
    assert frame[:2] == [3, "a1"] and frame[2]["status"] == "Accepted"


@pytest.mark.parametrize(
    ("payload", "code16", "code201"),
    [
        ({"chargePointVendor": "V"}, "OccurenceConstraintViolation", None),
        ({"chargePointVendor": 5, "chargePointModel": "M"}, "TypeConstraintViolation", None),
    ],
)
def test_schema_violations_get_the_right_callerror(
    payload: dict[str, Any], code16: str, code201: str | None
) -> None:
    frame = reply(conn(), json.dumps([2, "x", "BootNotification", payload]))
    assert frame[0] == 4 and frame[1] == "x" and frame[2] == code16


def test_version_spelling_of_codes() -> None:
    assert reply(conn(V16), "garbage")[2] == "FormationViolation"
    assert reply(conn(V201), "garbage")[2] == "FormatViolation"
    assert reply(conn(V201), "garbage")[1] == "-1"


def test_unknown_and_unsupported_actions() -> None:
    assert reply(conn(), '[2, "u", "Teleport", {}]')[2] == "NotImplemented"
    assert reply(conn(), '[2, "u", "Heartbeat", {}]')[2] == "NotSupported"


def test_handler_crash_is_an_internal_error_not_a_dead_connection() -> None:
    def boom(p: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug")

    c = Connection(V16, {"Heartbeat": boom})
    assert reply(c, '[2, "1", "Heartbeat", {}]')[2] == "InternalError"
    assert reply(c, '[2, "2", "Heartbeat", {}]')[2] == "InternalError"


def test_outbound_call_result_and_timeout() -> None:
    c = conn()
    uid, _text = c.call("RemoteStopTransaction", {"transactionId": 3}, now=0.0)
    r = c.receive(json.dumps([3, uid, {"status": "Accepted"}]))
    assert r.outcomes[0].ok and r.outcomes[0].payload == {"status": "Accepted"}
    uid2, _ = c.call("RemoteStopTransaction", {"transactionId": 4}, now=0.0)
    assert c.tick(1.0) == []
    (timed_out,) = c.tick(31.0)
    assert timed_out.unique_id == uid2 and timed_out.error == "Timeout"
    assert c.pending_calls == 0


def test_every_answer_from_the_peer_is_heard_a_late_one_included() -> None:
    """The `answered` hook hears each CALLRESULT or CALLERROR: the CSMS counts it as a sign of life.
    One arriving after its call timed out (or was given up) is ignored as an answer, but the peer
    that sent it is there all the same."""
    heard: list[None] = []
    c = Connection(V16, {}, answered=lambda: heard.append(None))
    uid, _ = c.call("RemoteStopTransaction", {"transactionId": 3}, now=0.0)
    assert c.receive(json.dumps([3, uid, {"status": "Accepted"}])).outcomes[0].ok
    uid2, _ = c.call("RemoteStopTransaction", {"transactionId": 4}, now=0.0)
    assert c.receive(json.dumps([4, uid2, "InternalError", "", {}])).outcomes[0].error == "InternalError"
    late, _ = c.call("RemoteStopTransaction", {"transactionId": 5}, now=0.0)
    assert [o.unique_id for o in c.tick(31.0)] == [late]
    assert c.receive(json.dumps([3, late, {"status": "Accepted"}])).outcomes == []
    assert len(heard) == 3


@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda kids: st.lists(kids, max_size=5),
            max_leaves=12,
        ).map(json.dumps),
    )
)
def test_arbitrary_input_only_ever_gets_a_frame_back(text: str) -> None:
    c = conn()
    r = c.receive(text)
    if r.reply is not None:
        frame = json.loads(r.reply)
        assert frame[0] in (3, 4)


# ---- arbitrary frames at a Connection wired to the real central-system handlers --------------------

_FIELDS = [
    "connectorId", "idTag", "meterStart", "meterStop", "timestamp", "transactionId", "meterValue",
    "sampledValue", "value", "unit", "status", "errorCode", "eventType", "triggerReason", "seqNo",
    "transactionInfo", "idToken", "evse", "evseId", "connectorStatus", "chargePointVendor",
    "chargePointModel", "reason", "chargingStation", "eventData", "offline", "vendorId",
]  # fmt: skip
_ACTIONS = [
    "BootNotification", "Heartbeat", "StatusNotification", "Authorize", "StartTransaction",
    "MeterValues", "StopTransaction", "TransactionEvent", "NotifyEvent", "DataTransfer",
    "FirmwareStatusNotification", "DiagnosticsStatusNotification", "LogStatusNotification",
    "RemoteStartTransaction", "Reset",
]  # fmt: skip

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=10,
)
_ids = st.text(min_size=1, max_size=36)


def _valid_templates(version: OcppVersion) -> list[tuple[str, dict[str, Any]]]:
    """Frames that pass the schema against the seeded charger, so a mutation reaches the handler."""
    ts = "2026-03-02T09:05:00Z"
    if version == V16:
        meter = [{"timestamp": ts, "sampledValue": [{"value": "1500", "unit": "Wh"}]}]
        return [
            ("StartTransaction", {"connectorId": 1, "idTag": "FUZZ", "meterStart": 0, "timestamp": ts}),
            ("MeterValues", {"connectorId": 1, "transactionId": 1, "meterValue": meter}),
            ("StopTransaction", {"transactionId": 1, "meterStop": 2000, "timestamp": ts}),
            ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}),
        ]
    meter201 = [{"timestamp": ts, "sampledValue": [{"value": 1500}]}]
    event = {
        "eventType": "Updated",
        "timestamp": ts,
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 5,
        "transactionInfo": {"transactionId": "FZ-TX"},
        "idToken": {"idToken": "FUZZ", "type": "ISO14443"},
        "evse": {"id": 1},
        "meterValue": meter201,
    }
    return [
        ("TransactionEvent", event),
        ("MeterValues", {"evseId": 1, "meterValue": meter201}),
        (
            "StatusNotification",
            {"timestamp": ts, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1},
        ),
    ]


def _mutated(version: OcppVersion) -> st.SearchStrategy[str]:
    """A valid frame with one field, at any depth, replaced by garbage (wrong type, bad timestamp,
    a non-finite or negative meter reading, an unknown enum)."""

    def mutate(template: tuple[str, dict[str, Any]], path_seed: int, garbage: Any, uid: str) -> str:
        action, payload = template
        payload = json.loads(json.dumps(payload))
        node: Any = payload
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            key = keys[path_seed % len(keys)]
            path_seed //= len(keys)
            child = node[key]
            if isinstance(child, dict | list) and child and path_seed % 3:
                node = child
                continue
            node[key] = garbage
            break
        return json.dumps([2, uid, action, payload])

    garbage = st.one_of(
        _json,
        st.sampled_from(["not-a-time", "-5", "NaN", "1e400", "kWh", "", "Ended", "Started"]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(2**70), max_value=2**70),
    )
    return st.builds(mutate, st.sampled_from(_valid_templates(version)), st.integers(0, 10**6), garbage, _ids)


def _frames(version: OcppVersion) -> st.SearchStrategy[str]:
    payloads = st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=8), _json, max_size=6)
    actions = st.sampled_from(_ACTIONS) | st.text(max_size=12)
    calls = st.builds(lambda u, a, p: json.dumps([2, u, a, p]), _ids, actions, payloads)
    answers = st.builds(lambda k, u, p: json.dumps([k, u, p]), st.sampled_from([3, 4]), _ids, _json)
    short = st.lists(_json, max_size=3).map(json.dumps)
    return st.one_of(calls, answers, short, st.text(max_size=200), _mutated(version))


def _seeded_app() -> Any:
    """A registered charger with a confirmed booking for driver FUZZ and one open session."""
    from chargeshare.bootstrap import Config
    from chargeshare.services.booking import BookRequest
    from chargeshare.services.clock import ManualClock
    from tests.conftest import SQLITE_MEMORY, T0, add_charger, build_for_tests

    app = build_for_tests(Config(database_url=SQLITE_MEMORY), clock=ManualClock(T0))
    charger_id = add_charger(app, "FZ1")
    driver = app.marketplace.add_driver("fuzz", "FUZZ")
    app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, 60, 10_000))
    app.charging.start("FZ1", 1, "FUZZ", 0, T0, charger_tx_id="FZ-TX")
    return app


def _snapshot(app: Any) -> dict[str, list[tuple[Any, ...]]]:
    from sqlalchemy import select

    from chargeshare.adapters.sql.schema import metadata

    with app.store.engine.connect() as conn:
        return {
            table.name: [tuple(row) for row in conn.execute(select(table))]
            for table in metadata.sorted_tables
        }


@pytest.mark.parametrize("version", [V16, V201])
@pytest.mark.slow
def test_arbitrary_frames_at_the_real_handlers_never_raise_and_refused_ones_change_nothing(
    version: OcppVersion,
) -> None:
    from hypothesis import HealthCheck, settings

    from chargeshare.ocpp import csms_v16, csms_v201

    app = _seeded_app()
    module = csms_v16 if version == V16 else csms_v201
    connection = Connection(version, module.handlers(app.charging, "FZ1", app.reports))
    seen = {"refused": 0, "accepted": 0}

    @settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_frames(version))
    def throw(text: str) -> None:
        before = _snapshot(app)
        received = connection.receive(text)  # must never raise
        if received.reply is None:  # an answer to a call we never made: ignored
            assert _snapshot(app) == before
            return
        frame = json.loads(received.reply)
        assert frame[0] in (3, 4) and isinstance(frame[1], str)
        if frame[0] == 4:
            seen["refused"] += 1
            assert frame[2] != "InternalError", (text, frame)  # garbage is theirs, never our crash
            assert _snapshot(app) == before, (text, frame)
        else:
            seen["accepted"] += 1

    try:
        throw()
    finally:
        app.close()
    assert seen["refused"] > seen["accepted"]  # the strategy mostly throws garbage, as intended


_TS = "2026-03-02T09:05:00Z"


@pytest.mark.parametrize(
    ("version", "action", "payload"),
    [
        (
            V16,
            "StartTransaction",
            {"connectorId": 1, "idTag": "FUZZ", "meterStart": 2**70, "timestamp": _TS},
        ),
        (V16, "StopTransaction", {"transactionId": 1, "meterStop": 2**62, "timestamp": _TS}),
        (V16, "StopTransaction", {"transactionId": 1, "meterStop": -5, "timestamp": _TS}),
        (
            V16,
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": 1,
                "meterValue": [{"timestamp": _TS, "sampledValue": [{"value": "inf"}]}],
            },
        ),
        (
            V201,
            "MeterValues",
            {
                "evseId": 1,
                "meterValue": [
                    {"timestamp": _TS, "sampledValue": [{"value": 1, "unitOfMeasure": {"multiplier": 2**62}}]}
                ],
            },
        ),
        (
            V201,
            "TransactionEvent",
            {
                "eventType": "Updated",
                "timestamp": _TS,
                "triggerReason": "MeterValuePeriodic",
                "seqNo": 2**64,
                "transactionInfo": {"transactionId": "FZ-TX"},
            },
        ),
    ],
)
def test_out_of_range_numbers_are_the_chargers_error_and_change_nothing(
    version: OcppVersion, action: str, payload: dict[str, Any]
) -> None:
    from chargeshare.ocpp import csms_v16, csms_v201

    app = _seeded_app()
    module = csms_v16 if version == V16 else csms_v201
    before = _snapshot(app)
    frame = reply(
        Connection(version, module.handlers(app.charging, "FZ1", app.reports)),
        json.dumps([2, "n", action, payload]),
    )
    assert frame[:3] == [4, "n", "PropertyConstraintViolation"]
    assert _snapshot(app) == before
    app.close()


@pytest.mark.parametrize(
    "timestamp",
    [
        "9999-12-31T23:59:59Z",  # storable, but no charger means it
        "9999-12-31T23:30:00-05:00",  # past year 9999 in UTC: datetime overflows
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
        "1899-12-31T23:59:59Z",
    ],
)
@pytest.mark.parametrize("version", [V16, V201])
def test_timestamps_out_of_range_are_the_chargers_error_and_change_nothing(
    version: OcppVersion, timestamp: str
) -> None:
    from chargeshare.ocpp import csms_v16, csms_v201

    app = _seeded_app()
    before = _snapshot(app)
    if version == V16:
        connection = Connection(version, csms_v16.handlers(app.charging, "FZ1", app.reports))
        payload = {"transactionId": 1, "meterStop": 2000, "timestamp": timestamp}
        frame = reply(connection, json.dumps([2, "t", "StopTransaction", payload]))
    else:
        connection = Connection(version, csms_v201.handlers(app.charging, "FZ1", app.reports))
        event = dict(_valid_templates(V201)[0][1], eventType="Ended", timestamp=timestamp)
        frame = reply(connection, json.dumps([2, "t", "TransactionEvent", event]))
    assert frame[:3] == [4, "t", "PropertyConstraintViolation"]
    assert _snapshot(app) == before
    app.close()


@pytest.mark.parametrize(
    ("version", "action", "payload"),
    [
        (V16, "Authorize", {"idTag": "FU\x00ZZ"}),
        (V16, "StartTransaction", {"connectorId": 1, "idTag": "\x00", "meterStart": 0, "timestamp": _TS}),
        (
            V16,
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Available", "info": "\x00"},
        ),
        (V201, "Authorize", {"idToken": {"idToken": "FUZZ\x00", "type": "ISO14443"}}),
    ],
)
def test_strings_holding_nul_are_the_chargers_error_and_change_nothing(
    version: OcppVersion, action: str, payload: dict[str, Any]
) -> None:
    """PostgreSQL text cannot hold NUL: such a string would fail in the store, as our error."""
    from chargeshare.ocpp import csms_v16, csms_v201

    app = _seeded_app()
    module = csms_v16 if version == V16 else csms_v201
    before = _snapshot(app)
    text = json.dumps([2, "z", action, payload])
    assert "\\u0000" in text
    frame = reply(Connection(version, module.handlers(app.charging, "FZ1", app.reports)), text)
    assert frame[:3] == [4, "z", "PropertyConstraintViolation"]
    assert _snapshot(app) == before
    app.close()


def test_a_backslash_before_u0000_is_not_a_nul() -> None:
    c = Connection(V16, {"DataTransfer": lambda p: {"status": "Accepted"}})
    text = json.dumps([2, "d", "DataTransfer", {"vendorId": "v", "data": "\\u0000"}])
    assert json.loads(c.receive(text).reply or "null") == [3, "d", {"status": "Accepted"}]


def _meter_call(value: str) -> str:
    """A 1.6 MeterValues whose transactionId is written as `value` (raw JSON number text)."""
    sampled = '{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "100"}]}'
    return (
        f'[2, "m1", "MeterValues", {{"connectorId": 1, "transactionId": {value}, "meterValue": [{sampled}]}}]'
    )


@pytest.mark.parametrize(
    ("number", "refused"),
    [
        (str(2**63 - 1), False),  # 19 digits, the largest a database integer holds
        (str(2**63), True),
        (str(-(2**63) - 1), True),
        ("1" + "0" * 30, True),
        ("12", False),
    ],
)
@pytest.mark.parametrize("as_bytes", [False, True])
def test_integers_out_of_database_range_are_refused(number: str, refused: bool, as_bytes: bool) -> None:
    c = Connection(V16, {"MeterValues": lambda p: {}})
    text = _meter_call(number)
    reply = json.loads(c.receive(text.encode() if as_bytes else text).reply or "null")
    if refused:
        assert reply[0] == 4 and reply[2] == "PropertyConstraintViolation", reply
    else:
        assert reply == [3, "m1", {}]


def test_a_long_run_of_digits_in_a_string_is_not_an_integer() -> None:
    c = Connection(V16, {"DataTransfer": lambda p: {"status": "Accepted"}})
    text = '[2, "d1", "DataTransfer", {"vendorId": "v", "data": "' + "9" * 40 + '"}]'
    assert json.loads(c.receive(text).reply or "null") == [3, "d1", {"status": "Accepted"}]


def test_parse_marks_frames_holding_no_integer_out_of_range() -> None:
    small = parse(_meter_call("12"))
    largest = parse(_meter_call(str(2**63 - 1)))
    too_large = parse(_meter_call(str(2**63)))
    assert isinstance(small, Call) and small.storable
    assert isinstance(largest, Call) and largest.storable
    assert isinstance(too_large, Call) and not too_large.storable
    assert too_large.payload["transactionId"] == 2**63  # parsed all the same: the schema check is first
    assert small == Call(small.unique_id, small.action, small.payload)  # the mark is not part of equality


def test_a_schema_error_is_named_before_an_integer_out_of_range() -> None:
    c = Connection(V16, {"MeterValues": lambda p: {}})
    text = _meter_call(str(2**64)).replace('"connectorId": 1', '"connectorId": "one"')
    reply = json.loads(c.receive(text).reply or "null")
    assert reply[0] == 4 and reply[2] == "TypeConstraintViolation", reply


# ---- frames nested too deep, and numbers JSON does not have -------------------------------------


def _nested(depth: int, uid: str = "d1") -> str:
    """A DataTransfer whose frame nests arrays and objects `depth` deep in all."""
    inner = "[" * (depth - 2) + "]" * (depth - 2)
    return f'[2, "{uid}", "DataTransfer", {{"vendorId": "v", "data": {inner or "1"}}}]'


@pytest.mark.parametrize(("version", "code"), [(V16, "FormationViolation"), (V201, "FormatViolation")])
@pytest.mark.parametrize(
    ("text", "uid"),
    [
        (_nested(20_000), "d1"),
        ('[2, "d2", "Heartbeat", ' + "[" * 20_000, "d2"),  # unclosed: the decoder's recursion is caught
        ("[" * 20_000, "-1"),  # no id to read
        (_nested(MAX_DEPTH + 1, "d3"), "d3"),
    ],
)
def test_a_frame_nested_too_deep_gets_a_format_callerror(
    version: OcppVersion, code: str, text: str, uid: str
) -> None:
    assert reply(Connection(version, {}), text)[:3] == [4, uid, code]


def test_nesting_is_counted_outside_strings_only() -> None:
    assert isinstance(parse(_nested(MAX_DEPTH)), Call)
    brackets = "[{" * MAX_DEPTH
    in_strings = f'[2, "s1", "DataTransfer", {{"vendorId": "{brackets}", "data": "{brackets}"}}]'
    assert isinstance(parse(in_strings), Call)
    escaped = f'[2, "s2", "DataTransfer", {{"vendorId": "\\"{brackets}", "data": [[1], [2]]}}]'
    assert isinstance(parse(escaped), Call)
    # Closing brackets in a string must not hide opening ones outside it.
    n = MAX_DEPTH // 2 + 1
    hidden = "[" * n + '"' + "]" * n + '", ' + "[" * n + "]" * n + ', "' + "[" * n + '"' + "]" * n
    with pytest.raises(RemoteProtocolError, match="nested deeper"):
        parse(f'[2, "s3", "DataTransfer", {{"vendorId": "v", "data": {hidden}}}]')


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400", "-1E999"])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_numbers_json_does_not_have_are_a_format_violation(token: str, as_bytes: bool) -> None:
    sampled = f'{{"timestamp": "{_TS}", "sampledValue": [{{"value": {token}}}]}}'
    text = f'[2, "n1", "MeterValues", {{"evseId": 1, "meterValue": [{sampled}]}}]'
    frame = reply(Connection(V201, {"MeterValues": lambda p: {}}), text.encode() if as_bytes else text)
    assert frame[:3] == [4, "n1", "FormatViolation"]


def test_a_frame_that_is_not_json_is_answered_under_its_id_when_that_can_be_read() -> None:
    assert reply(conn(), '[2, "x1", "Heartbeat", {,}]')[:3] == [4, "x1", "FormationViolation"]
    assert reply(conn(), "not json")[:3] == [4, "-1", "FormationViolation"]


def test_an_empty_payload_gets_the_schemas_verdict_every_time() -> None:
    """`{}` is decided once per schema: a schema that requires fields still refuses it, every time,
    and an unknown action is still named, however often it is asked."""
    from chargeshare.ocpp.frames import CALL, CALLRESULT, _empty_is_valid, check_payload

    for _ in range(2):
        check_payload("Heartbeat", {}, V16, CALL, "h")
        check_payload("MeterValues", {}, V16, CALLRESULT, "m")
        with pytest.raises(RemoteProtocolError) as refused:
            check_payload("StatusNotification", {}, V16, CALL, "s")
        assert refused.value.code == "OccurrenceConstraintViolation"
        with pytest.raises(RemoteProtocolError) as unknown:
            check_payload("Teleport", {}, V16, CALL, "t")
        assert unknown.value.code == "NotImplemented"
    assert reply(conn(), '[2, "u", "Teleport", {}]')[2] == "NotImplemented"
    before = _empty_is_valid.cache_info().currsize
    with pytest.raises(RemoteProtocolError):
        check_payload("Teleport2", {}, V16, CALL, "t")
    assert _empty_is_valid.cache_info().currsize == before  # a charger's made-up actions are not kept
