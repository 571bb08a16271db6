"""OCPP-J frames: parse, validate against the `ocpp` library's JSON schemas, encode.

Errors are split the h11 way: `RemoteProtocolError` is "they sent garbage" (answered with a
CALLERROR), `LocalProtocolError` is "we were about to send garbage" (a bug on our side).

Every frame is checked twice on a round trip, and jsonschema's check would be the largest cost of
a frame, so each schema is also compiled to Python code with fastjsonschema for the per-frame
verdict. The compiled check only answers "valid or not": when it says no, the
library's jsonschema validator has the last word and names the error, so verdicts and error
codes are jsonschema's (tests/unit/test_compiled_schemas.py holds the two to the same answers).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import fastjsonschema
from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.messages import get_validator

from chargeshare.ocpp import V16, V201, OcppVersion, family

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_FRAME_BYTES = 64 * 1024
UNKNOWN_MESSAGE_ID = "-1"  # what OCPP 2.0.1 and 2.1 say to use when the id cannot be read


@dataclass(frozen=True)
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]
    # Parsed from text holding nothing a store cannot take: no integer out of INT_RANGE, no NUL in a
    # string (see `parse`). Then `check_payload` need not walk the payload for them.
    storable: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class CallResult:
    unique_id: str
    payload: dict[str, Any]
    storable: bool = field(default=False, compare=False)  # as for Call


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


# Error code spellings differ between versions (1.6 has the misspellings from its spec); 2.1 spells
# them as 2.0.1 does.
_CODES: dict[OcppVersion, dict[str, str]] = {
    V16: {
        "FormatViolation": "FormationViolation",
        "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
        "MessageTypeNotSupported": "ProtocolError",
        "RpcFrameworkError": "ProtocolError",
    },
    V201: {},
}


def error_code(code: str, version: OcppVersion) -> str:
    return _CODES[family(version)].get(code, code)


def parse(data: str | bytes) -> Frame:
    if len(data) > MAX_FRAME_BYTES:
        raise RemoteProtocolError("FormatViolation", f"frame larger than {MAX_FRAME_BYTES} bytes")
    try:
        # Bytes are read as json.loads reads them, then as text: one decoder, one set of rules.
        text = data if isinstance(data, str) else data.decode(json.detect_encoding(data), "surrogatepass")
    except UnicodeDecodeError:
        raise RemoteProtocolError("FormatViolation", "frame is not valid JSON") from None
    # JSON writes a NUL in a string as \u0000, so text without that holds none.
    storable = "\\u0000" not in text
    try:
        if _too_deep(text):
            raise RecursionError
        try:
            msg = _DECODER.decode(text)
        except _OutOfRange:
            msg, storable = _WIDE_DECODER.decode(text), False  # the schema check first, then this refusal
    except (json.JSONDecodeError, _NotJsonNumber):
        raise RemoteProtocolError("FormatViolation", "frame is not valid JSON", _head_id(text)) from None
    except RecursionError:  # from the check above, or from an unbalanced frame it lets through
        raise RemoteProtocolError(
            "FormatViolation", f"frame nested deeper than {MAX_DEPTH} levels", _head_id(text)
        ) from None
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
        return Call(uid, msg[2], msg[3], storable)
    if kind == CALLRESULT:
        if len(msg) != 3 or not isinstance(msg[2], dict):
            raise RemoteProtocolError("FormatViolation", "CALLRESULT must be [3, id, {payload}]", uid)
        return CallResult(uid, msg[2], storable)
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


def has_schema(action: str, version: OcppVersion, kind: int = CALL) -> bool:
    try:
        get_validator(kind, action, version)
    except (OSError, ValueError):
        return False
    return True


INT_RANGE = range(-(2**63), 2**63)  # what a database integer column holds


class _OutOfRange(Exception):
    pass


class _NotJsonNumber(Exception):
    pass


def _int_in_range(digits: str) -> int:
    value = int(digits)
    if len(digits) > 18 and value not in INT_RANGE:  # 18 digits (and a sign) always fit
        raise _OutOfRange
    return value


def _finite(digits: str) -> float:
    value = float(digits)
    if math.isinf(value):  # 1e400: a number JSON can write, but no float holds
        raise _NotJsonNumber
    return value


def _no_constant(name: str) -> NoReturn:
    raise _NotJsonNumber  # NaN, Infinity, -Infinity: Python's json reads them; JSON has no such numbers


# Each integer is looked at as it is parsed, so that a payload is walked for large ones (after the
# schema check, which decides first) only when one is there; likewise for NUL, found in the text.
_DECODER = json.JSONDecoder(parse_int=_int_in_range, parse_float=_finite, parse_constant=_no_constant)
_WIDE_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant)

# Arrays and objects inside one another. The deepest OCPP message (a 2.0.1 ReportChargingProfiles) is
# 14 deep with its frame; the rest is room for vendors' customData. Deeper, the decoder and everything
# that walks a payload would recurse towards Python's limit.
MAX_DEPTH = 64
_HEAD = re.compile(r'\s*\[\s*\d+\s*,\s*"([^"\\]{1,36})"')
_ESCAPED_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_PLAIN_STRING = re.compile(rb'"[^"]*"')
# The frame's structure: quotes and brackets, each bracket as "[" or "]" (a mismatched pair is the
# decoder's error to name, not this count's).
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))


def _too_deep(text: str) -> bool:
    """Whether the arrays and objects nest deeper than MAX_DEPTH. A frame with no more brackets than
    that (nearly every frame) is answered by counting alone; otherwise strings are set aside and the
    brackets peeled, each step a pass in C over the text or what is left of it."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    if "\\" in text:  # an escaped quote would end a string early: empty the strings the careful way
        text = _ESCAPED_STRING.sub('""', text)
    structure = text.encode("utf-8", "surrogatepass").translate(_AS_SQUARE, _NOT_STRUCTURE)
    brackets = structure.replace(b'""', b"")  # strings without brackets in them
    if b'"' in brackets:
        brackets = _PLAIN_STRING.sub(b"", brackets)  # and those with
    for _ in range(MAX_DEPTH):  # each pass peels the innermost pairs: emptied after `depth` passes
        peeled = brackets.replace(b"[]", b"")
        if len(peeled) == len(brackets):
            return False  # unbalanced: the decoder names that (or recurses, caught in `parse`)
        brackets = peeled
    return bool(brackets)


def _head_id(text: str) -> str:
    """The UniqueId of a frame that cannot be decoded, if its start reads as one: the CALLERROR then
    answers the call it was, instead of leaving the charger to time out."""
    head = _HEAD.match(text)
    return head.group(1) if head is not None else UNKNOWN_MESSAGE_ID


def read_json(text: str) -> Any:
    """The JSON value of `text`, read by `parse`'s rules, for those who look at frames without
    answering them (wire logs): ValueError if it is not JSON, holds a number JSON does not have, or
    nests deeper than MAX_DEPTH."""
    try:
        if _too_deep(text):
            raise RecursionError
        return _WIDE_DECODER.decode(text)
    except (_NotJsonNumber, RecursionError):
        raise ValueError("not a JSON value OCPP-J allows") from None


def _unstorable(value: Any) -> str | None:
    """What in `value` no store takes, if anything: the schemas set no bounds on integers and JSON
    allows any size; JSON strings may hold NUL, PostgreSQL's text cannot."""
    if isinstance(value, dict):
        return next(filter(None, map(_unstorable, [*value, *value.values()])), None)
    if isinstance(value, list):
        return next(filter(None, map(_unstorable, value)), None)
    if isinstance(value, str):
        return "a string holding NUL" if "\x00" in value else None
    if isinstance(value, int) and not isinstance(value, bool) and value not in INT_RANGE:
        return "an integer out of range"
    return None


# The library validates every version's schemas as draft 4 (`Draft4Validator`); compile them the same.
_DRAFT4 = "http://json-schema.org/draft-04/schema#"


@functools.cache
def compiled_check(kind: int, action: str, version: OcppVersion) -> Callable[[Any], Any] | None:
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


def schema_accepts(kind: int, action: str, version: OcppVersion, payload: Any) -> bool:
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
    version: OcppVersion,
    kind: int,
    unique_id: str,
    *,
    storable: bool = False,
) -> None:
    """Validate against the official schema; raise RemoteProtocolError with the matching code.
    `storable`: the payload is known to hold nothing a store cannot take (see `Call`)."""
    try:
        if type(payload) is dict and not payload and _empty_is_valid(kind, action, version):
            return  # the same verdict as checking it again: an empty object holds nothing else to check
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
    unstorable = None if storable else _unstorable(payload)
    if unstorable is not None:
        raise RemoteProtocolError("PropertyConstraintViolation", f"{action}: {unstorable}", unique_id)


@functools.cache
def _empty_is_valid(kind: int, action: str, version: OcppVersion) -> bool:
    """Whether the schema accepts `{}`, the whole payload of most replies and of a Heartbeat: decided
    once per schema. An unknown action raises as `compiled_check` does, and is not remembered."""
    return schema_accepts(kind, action, version, {})


# One encoder for every frame: `json.dumps` with any option builds a new encoder on each call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def encode(frame: Frame) -> str:
    if isinstance(frame, CallResult) and not frame.payload:
        # Most answers (MeterValues, StatusNotification): only the id needs the encoder.
        return f"[{CALLRESULT},{_ENCODER.encode(frame.unique_id)},{{}}]"
    if isinstance(frame, Call):
        body: list[Any] = [CALL, frame.unique_id, frame.action, frame.payload]
    elif isinstance(frame, CallResult):
        body = [CALLRESULT, frame.unique_id, frame.payload]
    else:
        body = [CALLERROR, frame.unique_id, frame.code, frame.description, frame.details]
    return _ENCODER.encode(body)
