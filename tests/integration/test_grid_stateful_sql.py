"""The grid model of tests/services/test_grid_stateful.py on SQLite: the SQL store keeps the same
limits, deliveries and `held_w` as the in-memory one under the same interleavings."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.conftest import SQLITE_MEMORY, examples
from tests.services.test_grid_stateful import GridModel

pytestmark = pytest.mark.slow  # the in-memory model runs in the fast subset


class SqlGridModel(GridModel):
    url = SQLITE_MEMORY


SqlGridModel.TestCase.settings = settings(
    max_examples=examples(25), stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)
)
test_sql_grid_model = SqlGridModel.TestCase
