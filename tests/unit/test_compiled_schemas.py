"""The compiled schema checks (fastjsonschema) agree with the `ocpp` library's jsonschema validators.

`check_payload` trusts a compiled "valid" outright, so a compiled check that accepted what jsonschema
refuses would let garbage through. Payloads are drawn near each schema's shape (right keys, values
of the right or a wrong type, missing or extra keys, strings past their limits, booleans and floats
where integers belong) so most of them exercise the interesting boundaries, not just "not an object".
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import ocpp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.messages import get_validator

from chargeshare.ocpp import V16, V21, V201, OcppVersion
from chargeshare.ocpp.frames import (
    CALL,
    CALLRESULT,
    RemoteProtocolError,
    check_payload,
    compiled_check,
    schema_accepts,
)
from tests.conftest import examples

Json = Any


def _schemas(version: OcppVersion) -> list[tuple[int, str]]:
    folder = os.path.join(os.path.dirname(ocpp.__file__), f"v{version.replace('.', '')}", "schemas")
    out = []
    for name in sorted(os.listdir(folder)):
        stem = name.removesuffix(".json")
        if stem.endswith("Response"):
            out.append((CALLRESULT, stem.removesuffix("Response")))
        elif stem.endswith("Request") or version == V16:
            out.append((CALL, stem.removesuffix("Request")))
        # else a 2.1 schema the library names neither way (NotifyPeriodicEventStream, a SEND message
        # it cannot look up): no action of ours can reach it
    return out


CASES = [(v, kind, action) for v in (V16, V201, V21) for kind, action in _schemas(v)]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)


@st.composite
def _mostly(draw: st.DrawFn, good: st.SearchStrategy[Json], bad: st.SearchStrategy[Json]) -> Json:
    """Usually a right value, one time in eight a wrong one: whole payloads are often valid."""
    return draw(bad) if draw(st.integers(0, 7)) == 0 else draw(good)


def near(node: Json, root: Json, depth: int = 0) -> st.SearchStrategy[Json]:
    """Values shaped by `node` (a schema), sometimes deliberately wrong."""
    if isinstance(node, dict) and "$ref" in node:
        target: Json = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return near(target, root, depth)
    wrong = scalars if depth < 4 else st.just(None)
    kind = node.get("type") if isinstance(node, dict) else None
    if "enum" in node:
        return _mostly(st.sampled_from(node["enum"]), st.one_of(st.text(max_size=3), wrong))
    if kind == "object" or "properties" in node:
        props: dict[str, Json] = node.get("properties", {})
        if depth >= 4 or not props:
            return st.one_of(st.just({}), st.dictionaries(st.text(max_size=4), scalars, max_size=2))
        fields = {k: near(v, root, depth + 1) for k, v in props.items()}
        required = set(node.get("required", []))

        @st.composite
        def obj(draw: st.DrawFn) -> dict[str, Json]:
            out = {}
            for k, strat in fields.items():
                keep = draw(st.integers(0, 9))
                if (k in required and keep > 0) or (k not in required and keep > 6):
                    out[k] = draw(strat)
            if draw(st.integers(0, 9)) == 0:
                out[draw(st.text(max_size=4))] = draw(scalars)
            return out

        return _mostly(obj(), wrong) if depth else obj()
    if kind == "array":
        items = node.get("items", {})
        return _mostly(st.lists(near(items, root, depth + 1), max_size=3), wrong)
    if kind == "string":
        limit = min(node.get("maxLength", 20), 600)  # the longest OCPP limits are bounded by Hypothesis
        long = st.integers(limit, limit + 2).map(lambda n: "x" * n)
        return _mostly(st.text(max_size=min(limit, 40)), st.one_of(long, wrong))
    if kind == "integer":
        return _mostly(st.integers(-5, 10**6), st.one_of(st.just(1.0), st.just(2.5), st.booleans(), wrong))
    if kind == "number":
        numbers = st.one_of(st.floats(-1e6, 1e6), st.integers(-5, 10**6))
        return _mostly(numbers, st.one_of(st.booleans(), wrong))
    if kind == "boolean":
        return _mostly(st.booleans(), st.one_of(st.integers(0, 1), wrong))
    return wrong


@pytest.mark.parametrize(("version", "kind", "action"), CASES, ids=[f"{v}-{k}-{a}" for v, k, a in CASES])
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.slow
def test_compiled_check_gives_jsonschemas_verdict(
    version: OcppVersion, kind: int, action: str, data: st.DataObject
) -> None:
    validator = get_validator(kind, action, version)
    payload = data.draw(near(validator.schema, validator.schema))
    assert compiled_check(kind, action, version) is not None, "every OCPP schema compiles"
    ours = schema_accepts(kind, action, version, payload)
    if ours and not validator.is_valid(payload):
        # The one disagreement allowed: jsonschema's float arithmetic refuses a decimal multiple.
        assert all(_decimal_multiple(e) for e in validator.iter_errors(payload)), payload
    else:
        assert ours == validator.is_valid(payload), payload


def _decimal_multiple(error: Any) -> bool:
    """A `multipleOf` error on a number that is a multiple in decimal (0.6 of 0.1): a float quirk."""
    if error.validator != "multipleOf" or isinstance(error.instance, bool):
        return False
    return Decimal(str(error.instance)) % Decimal(str(error.validator_value)) == 0


def test_a_decimal_multiple_is_accepted_though_float_arithmetic_says_otherwise() -> None:
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargePointMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [], "minChargingRate": 0.6},
    }
    payload = {"connectorId": 0, "csChargingProfiles": profile}
    assert schema_accepts(CALL, "SetChargingProfile", V16, payload)
    assert not schema_accepts(CALL, "SetChargingProfile", V16, {**payload, "connectorId": -1.5})


def test_an_invalid_payload_is_still_named_by_jsonschema() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        check_payload("MeterValues", {"connectorId": "one", "meterValue": []}, V16, CALL, "7")
    assert caught.value.code == "TypeConstraintViolation"
    assert "connectorId" in str(caught.value)


def test_unknown_action_is_not_implemented() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        check_payload("NoSuchAction", {}, V16, CALL, "7")
    assert caught.value.code == "NotImplemented"
