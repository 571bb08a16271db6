"""The PASS/FAIL table that simulate and replay print for their invariant checks."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table

from chargeshare.services.invariants import InvariantResult


def check_table(title: str, first_column: str, results: Iterable[InvariantResult]) -> Table:
    """One row per check: what it checks, how many things it looked at, and its verdict."""
    table = Table(title=title)
    table.add_column(first_column)
    table.add_column("checked", justify="right")
    table.add_column("result")
    for r in results:
        verdict = "[green]PASS[/]" if r.ok else "[red]FAIL[/] " + "; ".join(r.failures)
        table.add_row(r.description, str(r.checked), verdict)
    return table
