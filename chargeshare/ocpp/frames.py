"""OCPP-J frames: parse, validate against the `ocpp` library's JSON schemas, encode.

Errors are split the h11 way: `RemoteProtocolError` is "they sent garbage" (answered with a
CALLERROR), `LocalProtocolError` is "we were about to send garbage" (a bug on our side).

Every frame is checked twice on a round trip and the check was the largest cost of a frame
(~85 us with jsonschema for a MeterValues), so each schema is also compiled to Python code with
fastjsonschema (~4 us). The compiled check only answers "valid or not": when it says no, the
library's jsonschema validator has the last word and names the error, so verdicts and error
codes are jsonschema's (tests/unit/test_compiled_schemas.py holds the two to the same answers).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastjsonschema
from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.messages import get_validator

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_FRAME_BYTES = 64 * 1024
UNKNOWN_MESSAGE_ID = "-1"  # what OCPP 2.0.1 says to use when the id cannot be read


@dataclass(frozen=True)
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]
    # Parsed from text holding no integer out of INT_RANGE (see `parse`).
    small_numbers: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class CallResult:
    unique_id: str
    payload: dict[str, Any]
    small_numbers: bool = field(default=False, compare=False)  # as for Call


@dataclass(frozen=True)
class CallError:
    unique_id: str
    code: str
    description: str
    details: dict[str, Any] = field(default_factory=dict)


Frame = Call | CallResult | CallError


class RemoteProtocolError(Exception):
    """The peer sent something OCPP does not allow. `code` is the version-neutral error name."""

    def __init__(self, code: str, description: str, unique_id: str = UNKNOWN_MESSAGE_ID) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.unique_id = unique_id


class LocalProtocolError(Exception):
    """We built a frame that breaks the schema: a bug here, never the peer's fault."""


# Error code spellings differ between versions (1.6 has the misspellings from its spec).
_CODES = {
    "1.6": {
        "FormatViolation": "FormationViolation",
        "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
        "MessageTypeNotSupported": "ProtocolError",
        "RpcFrameworkError": "ProtocolError",
    },
    "2.0.1": {},
}


def error_code(code: str, version: str) -> str:
    return _CODES[version].get(code, code)


def parse(text: str | bytes) -> Frame:
    if len(text) > MAX_FRAME_BYTES:
        raise RemoteProtocolError("FormatViolation", f"frame larger than {MAX_FRAME_BYTES} bytes")
    small = isinstance(text, str)  # bytes: the values are checked after the schema
    try:
        try:
            msg = _DECODER.decode(text) if isinstance(text, str) else json.loads(text)
        except _OutOfRange:
            msg, small = json.loads(text), False  # the schema check comes first, then this refusal
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RemoteProtocolError("FormatViolation", "frame is not valid JSON") from None
    if not isinstance(msg, list) or not msg:
        raise RemoteProtocolError("RpcFrameworkError", "frame must be a non-empty JSON array")
    kind = msg[0]
    uid = msg[1] if len(msg) > 1 and isinstance(msg[1], str) and 0 < len(msg[1]) <= 36 else None
    if kind not in (CALL, CALLRESULT, CALLERROR) or isinstance(kind, bool):
        raise RemoteProtocolError(
            "MessageTypeNotSupported", f"unknown MessageTypeId {kind!r}", uid or UNKNOWN_MESSAGE_ID
        )
    if uid is None:
        raise RemoteProtocolError("RpcFrameworkError", "UniqueId must be a string of 1 to 36 characters")
    if kind == CALL:
        if len(msg) != 4 or not isinstance(msg[2], str) or not isinstance(msg[3], dict):
            raise RemoteProtocolError("FormatViolation", "CALL must be [2, id, action, {payload}]", uid)
        return Call(uid, msg[2], msg[3], small)
    if kind == CALLRESULT:
        if len(msg) != 3 or not isinstance(msg[2], dict):
            raise RemoteProtocolError("FormatViolation", "CALLRESULT must be [3, id, {payload}]", uid)
        return CallResult(uid, msg[2], small)
    if len(msg) != 5 or not all(isinstance(x, str) for x in msg[2:4]) or not isinstance(msg[4], dict):
        raise RemoteProtocolError(
            "FormatViolation", "CALLERROR must be [4, id, code, description, {details}]", uid
        )
    return CallError(uid, msg[2], msg[3], msg[4])


def _schema_code(err: SchemaError) -> str:
    return {
        "type": "TypeConstraintViolation",
        "required": "OccurrenceConstraintViolation",
        "maxLength": "PropertyConstraintViolation",
        "enum": "PropertyConstraintViolation",
        "minimum": "PropertyConstraintViolation",
        "maximum": "PropertyConstraintViolation",
    }.get(str(err.validator), "FormatViolation")


def has_schema(action: str, version: str, kind: int = CALL) -> bool:
    try:
        get_validator(kind, action, version)
    except (OSError, ValueError):
        return False
    return True


INT_RANGE = range(-(2**63), 2**63)  # what a database integer column holds


class _OutOfRange(Exception):
    pass


def _int_in_range(digits: str) -> int:
    value = int(digits)
    if len(digits) > 18 and value not in INT_RANGE:  # 18 digits (and a sign) always fit
        raise _OutOfRange
    return value


# Each integer is looked at as it is parsed, so that a payload is walked for large ones (after the
# schema check, which decides first) only when one is there.
_DECODER = json.JSONDecoder(parse_int=_int_in_range)


def _oversized_int(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_oversized_int(v) for v in value.values())
    if isinstance(value, list):
        return any(_oversized_int(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and value not in INT_RANGE


# The library validates every version's schemas as draft 4 (`Draft4Validator`); compile them the same.
_DRAFT4 = "http://json-schema.org/draft-04/schema#"


@functools.cache
def compiled_check(kind: int, action: str, version: str) -> Callable[[Any], Any] | None:
    """The schema compiled to code: raises on an invalid payload. None if it will not compile
    (then jsonschema alone decides). Raises OSError/ValueError for an unknown action, as
    `get_validator` does."""
    schema = dict(get_validator(kind, action, version).schema)
    schema["$schema"] = _DRAFT4
    try:
        # Formats unchecked, defaults not filled in: jsonschema's Draft4Validator does neither.
        return fastjsonschema.compile(schema, use_default=False, use_formats=False, detailed_exceptions=False)
    except fastjsonschema.JsonSchemaDefinitionException:
        return None


def schema_accepts(kind: int, action: str, version: str, payload: Any) -> bool:
    """The compiled check's verdict alone (no error naming): for tests and diagnostics."""
    check = compiled_check(kind, action, version)
    if check is None:
        return bool(get_validator(kind, action, version).is_valid(payload))
    try:
        check(payload)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def check_payload(
    action: str,
    payload: dict[str, Any],
    version: str,
    kind: int,
    unique_id: str,
    *,
    small_numbers: bool = False,
) -> None:
    """Validate against the official schema; raise RemoteProtocolError with the matching code.
    `small_numbers`: the payload is known to hold no integer out of range (see `Call`)."""
    try:
        fast = compiled_check(kind, action, version)
    except (OSError, ValueError):
        raise RemoteProtocolError("NotImplemented", f"unknown action {action!r}", unique_id) from None
    if fast is not None:
        try:
            fast(payload)
        except fastjsonschema.JsonSchemaValueException:
            fast = None  # jsonschema decides and names the error
    if fast is None:
        err = next(iter(get_validator(kind, action, version).iter_errors(payload)), None)
        if err is not None:
            where = "/".join(str(p) for p in err.absolute_path) or "payload"
            raise RemoteProtocolError(_schema_code(err), f"{action}: {where}: {err.message}", unique_id)
    # The schemas set no bounds on integers; JSON allows any size, storage does not.
    if not small_numbers and _oversized_int(payload):
        raise RemoteProtocolError(
            "PropertyConstraintViolation", f"{action}: an integer out of range", unique_id
        )


# One encoder for every frame: `json.dumps` with any option builds a new encoder on each call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def encode(frame: Frame) -> str:
    if isinstance(frame, Call):
        body: list[Any] = [CALL, frame.unique_id, frame.action, frame.payload]
    elif isinstance(frame, CallResult):
        body = [CALLRESULT, frame.unique_id, frame.payload]
    else:
        body = [CALLERROR, frame.unique_id, frame.code, frame.description, frame.details]
    return _ENCODER.encode(body)
