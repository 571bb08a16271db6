"""`chargeshare grid-buyer`: what the grid buyer owes for guests' V2G export, month by month, and
its payments as an operator records them, straight in the backend's database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chargeshare.cli.open_backend import DatabaseUrl, open_app
from chargeshare.cli.options import json_option, write_rows
from chargeshare.domain.money import format_gbp

if TYPE_CHECKING:
    from chargeshare.domain.grid_settlement import GridSettlement, GridStatement

app = typer.Typer(
    help="The grid buyer's monthly statements for V2G export, and its payments.", no_args_is_help=True
)
console = Console(soft_wrap=True)

Month = Annotated[str, typer.Argument(help="A UK calendar month, YYYY-MM.")]
JsonOut = Annotated[Path | None, json_option("the result")]


def settlement_row(g: GridSettlement) -> dict[str, Any]:
    return {
        "month": g.month,
        "amount": g.amount,
        "exports": g.exports,
        "entry_id": g.entry_id,
        "recorded_at": g.recorded_at.isoformat(),
        "recorded_by": g.recorded_by,
    }


def statement_row(s: GridStatement) -> dict[str, Any]:
    return {
        "month": s.month,
        "starts_at": s.starts_at.isoformat(),
        "ends_at": s.ends_at.isoformat(),
        "over": s.over,
        "total": s.total,
        "opening": s.balance.opening,
        "received": s.balance.received,
        "closing": s.balance.closing,
        "reconciles": s.reconciles,
        "lines": [
            {
                "entry_id": x.entry_id,
                "booking_id": x.booking_id,
                "at": x.at.isoformat(),
                "exported_wh": x.exported_wh,
                "price_per_kwh": x.price_per_kwh,
                "amount": x.amount,
            }
            for x in s.lines
        ],
        "settlement": None if s.settlement is None else settlement_row(s.settlement),
    }


def _paid(g: GridSettlement) -> str:
    return f"paid {format_gbp(g.amount)} for {g.exports} export(s), entry {g.entry_id}"


@app.command("statement")
def statement(month: Month, database_url: DatabaseUrl = None, json_out: JsonOut = None) -> None:
    """The month's export credits the grid buyer owes for (booking, Wh, price, pence) and the total."""
    with open_app(database_url) as a:
        s = a.grid_settlement.statement(month)
    if json_out is not None:
        write_rows(json_out, statement_row(s))
        return
    table = Table("entry", "booking", "at (UTC)", "exported Wh", "p/kWh", "amount")
    for x in s.lines:
        table.add_row(
            x.entry_id,
            str(x.booking_id),
            f"{x.at:%Y-%m-%d %H:%M}",
            str(x.exported_wh),
            str(x.price_per_kwh),
            format_gbp(x.amount),
        )
    console.print(table)
    state = "open: it may still grow" if not s.over else "unpaid"
    if s.settlement is not None:
        state = _paid(s.settlement)
    console.print(f"grid buyer for {s.month}: {len(s.lines)} export(s), {format_gbp(s.total)}; {state}")
    b = s.balance
    console.print(
        f"owed {format_gbp(b.opening)} at the start + {format_gbp(s.total)} credited "
        f"- {format_gbp(b.received)} received = {format_gbp(b.closing)} at the end"
        + ("" if s.reconciles else " [red]does not reconcile[/]")
    )


@app.command("pay")
def pay(
    month: Month,
    amount: Annotated[int, typer.Argument(help="Pence received: the statement's total.")],
    database_url: DatabaseUrl = None,
    json_out: JsonOut = None,
) -> None:
    """Record the grid buyer's payment of a month that is over. Recorded again, nothing more is
    written; an amount other than the statement's total is refused (exit 2)."""
    with open_app(database_url) as a:
        done = a.grid_settlement.record_payment(month, amount)
    if json_out is not None:
        write_rows(
            json_out, {"recorded_now": done.recorded_now, "settlement": settlement_row(done.settlement)}
        )
        return
    said = "recorded" if done.recorded_now else "already recorded, nothing written"
    console.print(f"grid buyer for {month}: {_paid(done.settlement)} ({said})")


@app.command("settlements")
def settlements(database_url: DatabaseUrl = None, json_out: JsonOut = None) -> None:
    """Every month the grid buyer has paid, oldest first."""
    with open_app(database_url) as a:
        rows = [settlement_row(g) for g in a.grid_settlement.settlements()]
    if json_out is not None:
        write_rows(json_out, rows)
        return
    table = Table("month", "amount", "exports", "entry", "recorded (UTC)", "by")
    for r in rows:
        table.add_row(
            r["month"],
            format_gbp(r["amount"]),
            str(r["exports"]),
            r["entry_id"],
            r["recorded_at"][:16].replace("T", " "),
            "cli" if r["recorded_by"] is None else str(r["recorded_by"]),
        )
    console.print(table)
