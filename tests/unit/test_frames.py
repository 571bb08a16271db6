from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.ocpp.connection import Connection
from chargeshare.ocpp.frames import (
    MAX_FRAME_BYTES,
    Call,
    CallError,
    CallResult,
    RemoteProtocolError,
    encode,
    parse,
)


def boot_handler(p: dict[str, Any]) -> dict[str, Any]:
    return {"status": "Accepted", "currentTime": "2026-01-01T00:00:00.000Z", "interval": 300}


def conn(version: str = "1.6") -> Connection:
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


def reply(c: Connection, text: str) -> list[Any]:
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
    assert reply(conn("1.6"), "garbage")[2] == "FormationViolation"
    assert reply(conn("2.0.1"), "garbage")[2] == "FormatViolation"
    assert reply(conn("2.0.1"), "garbage")[1] == "-1"


def test_unknown_and_unsupported_actions() -> None:
    assert reply(conn(), '[2, "u", "Teleport", {}]')[2] == "NotImplemented"
    assert reply(conn(), '[2, "u", "Heartbeat", {}]')[2] == "NotSupported"


def test_handler_crash_is_an_internal_error_not_a_dead_connection() -> None:
    def boom(p: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug")

    c = Connection("1.6", {"Heartbeat": boom})
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
