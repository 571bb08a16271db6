"""Fixtures for the unit tests."""

from __future__ import annotations

import pytest

from tests.fake_monotonic import FakeMonotonic


@pytest.fixture
def real() -> FakeMonotonic:
    """A monotonic clock the test moves by hand."""
    return FakeMonotonic()
