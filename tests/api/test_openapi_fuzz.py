"""Schemathesis against /openapi.json, in-process: generated requests (valid and invalid) for every
operation, as the role the operation is for and as nobody, must never get a 5xx or an answer that
breaks its own schema. Bounded and derandomized, so it runs fast and the same way each time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from chargeshare.adapters.http_api import create_api
from tests.api.world import World, world

EXAMPLES = 8

_world_cm = world()
WORLD: World = _world_cm.__enter__()
schema = schemathesis.openapi.from_asgi("/openapi.json", create_api(WORLD.app))


@pytest.fixture(scope="module", autouse=True)
def _close_world() -> Iterator[None]:
    yield
    _world_cm.__exit__(None, None, None)


def role_headers(path: str) -> dict[str, str]:
    if path.startswith("/admin"):
        return WORLD.admin.headers
    if path.startswith("/host"):
        return WORLD.mine.host.headers
    return WORLD.mine.driver.headers


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@pytest.mark.slow
def test_no_server_errors_and_answers_match_the_schema(case: schemathesis.Case[Any]) -> None:
    checks = [not_a_server_error, response_schema_conformance]
    for headers in (role_headers(case.path), {}):
        case.call_and_validate(headers=headers, checks=checks)
