"""`chargeshare fleet`: business accounts' recurring blocks on hosts' chargers, their occurrences,
monthly invoices and statements, straight in the backend's database."""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chargeshare.cli.open_backend import DatabaseUrl, open_app
from chargeshare.cli.options import json_list_option, parse_duration, write_rows
from chargeshare.domain.fleet import BlockRule, ContractPolicy
from chargeshare.domain.money import format_gbp

app = typer.Typer(help="Fleet-share hubs: business accounts booking recurring blocks.", no_args_is_help=True)
console = Console(soft_wrap=True)

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_weekdays(text: str) -> frozenset[int]:
    """`mon-fri`, `0-4`, `sat,sun`, `1,3,5`: Monday is 0 (or mon)."""

    def day(word: str) -> int:
        word = word.strip().lower()
        if word in DAY_NAMES:
            return DAY_NAMES.index(word)
        if word.isdigit() and int(word) < 7:
            return int(word)
        raise typer.BadParameter(f"{word!r} is not a weekday (mon..sun or 0..6)", param_hint="--days")

    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        a, b = day(first), day(last) if last else day(first)
        if b < a:
            raise typer.BadParameter(f"{part!r} runs backwards", param_hint="--days")
        days.update(range(a, b + 1))
    return frozenset(days)


def _time(text: str, hint: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a time like 20:00", param_hint=hint) from None


def _day(text: str, hint: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date like 2026-01-05", param_hint=hint) from None


def _connector(text: str) -> tuple[str, int]:
    cp_id, _, number = text.partition(":")
    if not cp_id or (number and not number.isdigit()):
        raise typer.BadParameter(
            f"{text!r}: give CHARGE_POINT_ID or CHARGE_POINT_ID:CONNECTOR", param_hint="--on"
        )
    return cp_id, int(number or 1)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The business's name.")],
    id_tag: Annotated[str, typer.Argument(help="The tag its vehicles charge with.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Open a fleet account (no sign-in: `POST /fleets` makes one with a login)."""
    with open_app(database_url) as a:
        fleet = a.fleet.create_account(name, id_tag)
    console.print(f"fleet {fleet.fleet_id} {fleet.name!r}: its vehicles charge as driver {fleet.driver_id}")


@app.command("list")
def list_fleets(database_url: DatabaseUrl = None) -> None:
    """Every fleet account."""
    with open_app(database_url) as a:
        fleets = a.fleet.accounts()
    table = Table("fleet", "name", "driver")
    for f in fleets:
        table.add_row(str(f.fleet_id), f.name, str(f.driver_id))
    console.print(table)


@app.command("book")
def book(
    fleet_id: Annotated[int, typer.Argument(help="The fleet's id (see `fleet list`).")],
    on: Annotated[
        list[str], typer.Option(help="A charger's charge point id, with :CONNECTOR if not 1; repeat it.")
    ],
    first_day: Annotated[
        str, typer.Option("--from", help="The first day a block may start (UK), YYYY-MM-DD.")
    ],
    last_day: Annotated[str, typer.Option("--to", help="The last day a block may start (UK), YYYY-MM-DD.")],
    days: Annotated[str, typer.Option(help="Weekdays: mon-fri, sat,sun, 0-4 ...")] = "mon-fri",
    start: Annotated[str, typer.Option(help="UK wall-clock start.")] = "20:00",
    end: Annotated[
        str, typer.Option(help="UK wall-clock end; at or before the start: the next day.")
    ] = "06:00",
    notice: Annotated[str, typer.Option(help="A host cancelling with less notice pays the penalty.")] = "72h",
    penalty: Annotated[int, typer.Option(help="Pence a host pays per occurrence cancelled late.")] = 2_000,
    database_url: DatabaseUrl = None,
) -> None:
    """Book a recurring block on every charger named: every occurrence or none (the clashes listed)."""
    from chargeshare.services.fleet import BlockConflict, ConnectorRef

    try:
        notice_s = parse_duration(notice, "h")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--notice") from None
    targets = [_connector(x) for x in on]
    with open_app(database_url) as a:
        try:
            rule = BlockRule(
                parse_weekdays(days),
                _time(start, "--start"),
                _time(end, "--end"),
                _day(first_day, "--from"),
                _day(last_day, "--to"),
            )
            policy = ContractPolicy(timedelta(seconds=notice_s), penalty)
            with a.store.reading() as tx:
                refs = [ConnectorRef(tx.chargers.get(cp).charger_id, n) for cp, n in targets]
            booked = a.fleet.book_block(fleet_id, rule, refs, policy)
        except BlockConflict as exc:
            table = Table("charger", "connector", "starts (UTC)", "ends (UTC)", "why")
            for c in exc.clashes:
                table.add_row(
                    str(c.charger_id),
                    str(c.connector_no),
                    f"{c.starts_at:%Y-%m-%d %H:%M}",
                    f"{c.ends_at:%Y-%m-%d %H:%M}",
                    c.reason,
                )
            console.print(table)
            raise
    console.print(
        f"contract {booked.contract.contract_id}: {len(booked.bookings)} occurrences booked on "
        f"{len(booked.contract.connector_ids)} connector(s)"
    )


def _occurrence_row(b: Any) -> dict[str, Any]:
    return {
        "booking_id": b.booking_id,
        "charger_id": b.charger_id,
        "connector_id": b.connector_id,
        "starts_at": b.starts_at.isoformat(),
        "ends_at": b.ends_at.isoformat(),
        "status": b.status.value,
    }


@app.command("occurrences")
def occurrences(
    fleet_id: Annotated[int, typer.Argument(help="The fleet's id.")],
    contract: Annotated[int | None, typer.Option(help="Only this contract's.")] = None,
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """The fleet's block bookings, by start."""
    with open_app(database_url) as a:
        rows = [_occurrence_row(b) for b in a.fleet.occurrences(fleet_id, contract_id=contract)]
    if json_out is not None:
        write_rows(json_out, rows)
        return
    table = Table("booking", "charger", "connector", "starts (UTC)", "ends (UTC)", "status")
    for r in rows:
        table.add_row(
            *(
                str(r[k])
                for k in ("booking_id", "charger_id", "connector_id", "starts_at", "ends_at", "status")
            )
        )
    console.print(table)
    console.print(f"{len(rows)} occurrences")


@app.command("invoice")
def invoice(
    fleet_id: Annotated[int, typer.Argument(help="The fleet's id.")],
    month: Annotated[str, typer.Argument(help="A UK calendar month that is over, YYYY-MM.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Issue the month's invoice (asked again: the same invoice) and show its lines."""
    with open_app(database_url) as a:
        issued = a.fleet.invoice(fleet_id, month)
    table = Table("entry", "booking", "kind", "at (UTC)", "energy Wh", "amount")
    for x in issued.lines:
        table.add_row(
            x.entry_id,
            str(x.booking_id),
            x.kind.value,
            f"{x.at:%Y-%m-%d %H:%M}",
            str(x.energy_wh),
            format_gbp(x.amount),
        )
    console.print(table)
    i = issued.invoice
    console.print(
        f"invoice {i.invoice_id} for {i.month}: {format_gbp(i.total)}, "
        f"outstanding {format_gbp(i.outstanding)}"
    )


@app.command("pay")
def pay(
    fleet_id: Annotated[int, typer.Argument(help="The fleet's id.")],
    month: Annotated[str, typer.Argument(help="The invoice's month, YYYY-MM.")],
    amount: Annotated[int, typer.Argument(help="Pence received.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Record a payment received against an invoice."""
    with open_app(database_url) as a:
        i = a.fleet.pay(fleet_id, month, amount)
    console.print(
        f"invoice {i.invoice_id} for {i.month}: paid {format_gbp(i.paid)}, "
        f"outstanding {format_gbp(i.outstanding)}"
    )


@app.command("statement")
def statement(
    fleet_id: Annotated[int, typer.Argument(help="The fleet's id.")],
    database_url: DatabaseUrl = None,
) -> None:
    """The fleet's invoices, what is invoiced and unpaid, and what is charged but not invoiced yet."""
    with open_app(database_url) as a:
        s = a.fleet.statement(fleet_id)
    table = Table("month", "invoice", "total", "paid", "outstanding")
    for i in s.invoices:
        table.add_row(
            i.month, str(i.invoice_id), format_gbp(i.total), format_gbp(i.paid), format_gbp(i.outstanding)
        )
    console.print(table)
    console.print(
        f"fleet {s.fleet.fleet_id} {s.fleet.name!r}: receivable {format_gbp(s.receivable)}, "
        f"unbilled {format_gbp(s.unbilled)}, balance {format_gbp(s.balance)}"
    )
