"""The charger core is sans-I/O: neither it nor any project module it imports, however indirectly,
imports an engine (asyncio, SimPy) or a socket library, so both drivers can run the same core."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

ENGINES = {"asyncio", "simpy", "websockets", "socket", "threading"}
OURS = ("simulators", "chargeshare")


def imported(source: str) -> set[str]:
    """Every module a source imports, at any depth of its code (lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def source_of(module: str) -> str | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin).read_text()


def engines_reached(root: str) -> dict[str, set[str]]:
    """Project module -> the engines it imports, over everything `root` reaches in the project."""
    seen: set[str] = set()
    found: dict[str, set[str]] = {}
    todo = [root]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        try:
            source = source_of(module)
        except ModuleNotFoundError:  # `from package import name` where name is not a module
            continue
        if source is None:
            continue
        names = imported(source)
        hits = {n for n in names if n.split(".")[0] in ENGINES}
        if hits:
            found[module] = hits
        todo.extend(n for n in names if n.split(".")[0] in OURS)
    return found


def test_the_check_sees_an_engine() -> None:
    assert imported("import asyncio\ndef f():\n    from simpy import Environment\n") >= {"asyncio", "simpy"}


def test_the_check_follows_project_imports() -> None:
    assert "simulators.charger" in engines_reached("simulators.charger")


def test_the_charger_core_reaches_no_engine() -> None:
    assert engines_reached("simulators.charger_core") == {}
