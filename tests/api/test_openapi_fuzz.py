"""Schemathesis against /openapi.json, in-process: generated requests (valid and invalid) for every
operation, as the role the operation is for and as nobody, must never get a 5xx or an answer that
breaks its own schema. Bounded and derandomized, so it runs fast and the same way each time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import BaseSchema
from schemathesis.checks import not_a_server_error, response_schema_conformance

from chargeshare.entrypoints.api import create_api
from tests.api.world import World, world

EXAMPLES = 8


# The world and the schema are made when the test runs, not when it is collected: schemathesis
# builds each operation's test (its coverage cases too) from the schema, which takes seconds.
@pytest.fixture(scope="module")
def fuzz_world() -> Iterator[World]:
    with world() as w:
        yield w


@pytest.fixture(scope="module")
def api_schema(fuzz_world: World) -> BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", create_api(fuzz_world.app))


schema = schemathesis.pytest.from_fixture("api_schema")


def role_headers(w: World, path: str) -> dict[str, str]:
    if path.startswith(("/admin", "/fleets")):  # fleets: an operator may do all a business account may
        return w.admin.headers
    if path.startswith("/host"):
        return w.mine.host.headers
    return w.mine.driver.headers


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@pytest.mark.slow
def test_no_server_errors_and_answers_match_the_schema(
    case: schemathesis.Case[Any], fuzz_world: World
) -> None:
    checks = [not_a_server_error, response_schema_conformance]
    for headers in (role_headers(fuzz_world, case.path), {}):
        case.call_and_validate(headers=headers, checks=checks)
