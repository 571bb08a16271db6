"""Routes stay thin: no module of the HTTP API opens a unit of work on the store. Reads go through
the query layer (chargeshare/services/queries/), which decides who may see what."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import chargeshare.entrypoints.api as http_api

API_DIR = Path(http_api.__file__).parent
MODULES = sorted(API_DIR.glob("*.py"))


def units_of_work_opened(source: str) -> list[int]:
    """Lines that call `<anything>.store.reading()` or `<anything>.store.transaction()`."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("reading", "transaction")
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "store"
    ]


def test_the_check_finds_a_unit_of_work() -> None:
    assert units_of_work_opened("with app.store.reading() as tx:\n    pass\n") == [1]


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_no_route_opens_a_unit_of_work(module: Path) -> None:
    assert units_of_work_opened(module.read_text()) == [], f"{module.name} reads the store itself"
