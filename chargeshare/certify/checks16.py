"""Rules over captured OCPP 1.6 frames that several cases share: connector status sequences, meter
values, and the shape of a transaction from StartTransaction to StopTransaction."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from chargeshare.certify.context import CaseContext
from chargeshare.certify.wirelog import CALLRESULT, Entry

ENERGY = "Energy.Active.Import.Register"
DURING_TRANSACTION = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})

# OCPP 1.6 section 4.9: which status may follow which (Faulted may come and go from anywhere).
ALLOWED_NEXT = {
    "Available": {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Reserved", "Unavailable"},
    "Preparing": {"Available", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"},
    "Charging": {"Available", "SuspendedEV", "SuspendedEVSE", "Finishing", "Unavailable"},
    "SuspendedEV": {"Available", "Charging", "SuspendedEVSE", "Finishing", "Unavailable"},
    "SuspendedEVSE": {"Available", "Charging", "SuspendedEV", "Finishing", "Unavailable"},
    "Finishing": {"Available", "Preparing", "Unavailable"},
    "Reserved": {"Available", "Preparing", "Unavailable"},
    "Unavailable": {"Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE"},
}


def statuses(ctx: CaseContext, since: int) -> list[Entry]:
    return ctx.find("StatusNotification", lambda p: p["connectorId"] == ctx.settings.connector, since=since)


def check_status_sequence(ctx: CaseContext, since: int) -> None:
    """Every reported change of the connector under test follows the 1.6 transition table."""
    seen = statuses(ctx, since)
    for before, after in itertools.pairwise(seen):
        a, b = (
            str(before.payload and before.payload["status"]),
            str(after.payload and after.payload["status"]),
        )
        if a == b or "Faulted" in (a, b):
            continue
        if b not in ALLOWED_NEXT.get(a, set()):
            raise ctx.fail(
                f"connector status went from {a} to {b}, which OCPP 1.6 does not allow", before, after
            )


def reading_wh(value: str, unit: str | None) -> Decimal:
    number = Decimal(value)
    if not number.is_finite():
        raise InvalidOperation(value)
    return number * 1000 if unit == "kWh" else number


def check_meter_values(ctx: CaseContext, transaction_id: int, since: int) -> list[tuple[Entry, Decimal]]:
    """Every MeterValues of the transaction names it, carries numbers, and its energy register never
    runs backwards. Returns the energy readings in order."""
    readings: list[tuple[Entry, Decimal]] = []
    for e in ctx.find("MeterValues", since=since):
        assert e.payload is not None
        if e.payload.get("transactionId") not in (None, transaction_id):
            raise ctx.fail(
                f"MeterValues names transaction {e.payload.get('transactionId')}, not {transaction_id}", e
            )
        for mv in e.payload.get("meterValue", []):
            for sv in mv.get("sampledValue", []):
                try:
                    wh = reading_wh(str(sv.get("value")), sv.get("unit"))
                except (InvalidOperation, ValueError):
                    raise ctx.fail(
                        f"MeterValues carries a reading that is not a number: {sv.get('value')!r}", e
                    ) from None
                if sv.get("measurand", ENERGY) == ENERGY and not sv.get("phase"):
                    if readings and wh < readings[-1][1]:
                        raise ctx.fail("the energy register ran backwards", readings[-1][0], e)
                    readings.append((e, wh))
    return readings


@dataclass(frozen=True)
class Started:
    entry: Entry
    transaction_id: int
    meter_start: int
    mark: int


async def expect_start(ctx: CaseContext, id_tag: str, *, since: int) -> Started:
    """StartTransaction for our card on our connector, accepted by us; then Charging, then a reading."""
    start = await ctx.wait_for(
        "StartTransaction",
        lambda p: p["connectorId"] == ctx.settings.connector and p["idTag"] == id_tag,
        since=since,
        what=f"StartTransaction for {id_tag}",
    )
    early = [
        e
        for e in statuses(ctx, since)
        if e.seq < start.seq and e.payload is not None and e.payload["status"] in DURING_TRANSACTION
    ]
    if early:
        said = early[0].payload and early[0].payload["status"]
        raise ctx.fail(
            f"the connector reported {said} before any transaction started",
            early[0],
            start,
        )
    answer = ctx.log.answer_to(start)
    if answer is None or answer.kind != CALLRESULT or answer.payload is None:
        raise ctx.fail("StartTransaction went unanswered", start)
    ctx.cite(answer)
    assert start.payload is not None
    tx = int(answer.payload["transactionId"])
    first = await ctx.wait_for(
        "StatusNotification",
        lambda p: p["connectorId"] == ctx.settings.connector,
        since=start.seq,
        what="StatusNotification after the start",
    )
    for status in statuses(ctx, start.seq):
        assert status.payload is not None
        if status.payload["status"] not in DURING_TRANSACTION:
            raise ctx.fail(
                f"connector reported {status.payload['status']} during transaction {tx}", start, status
            )
    assert first.payload is not None
    if first.payload["status"] == "Finishing":
        raise ctx.fail("the connector went to Finishing without charging", start, first)
    await ctx.wait_for(
        "MeterValues",
        lambda p: p["transactionId"] == tx,
        since=start.seq,
        what=f"MeterValues for transaction {tx}",
    )
    check_meter_values(ctx, tx, start.seq)
    return Started(start, tx, int(start.payload["meterStart"]), start.seq)


async def expect_stop(ctx: CaseContext, started: Started, *, reasons: tuple[str, ...]) -> Entry:
    """StopTransaction naming the transaction we assigned, with a meterStop that accounts for every
    reading sent, then the connector back to Available along allowed transitions."""
    stop = await ctx.wait_for("StopTransaction", since=started.mark, what="StopTransaction")
    assert stop.payload is not None
    answer = ctx.log.answer_to(stop)
    ctx.cite(answer)
    if stop.payload.get("transactionId") != started.transaction_id:
        raise ctx.fail(
            f"StopTransaction names transaction {stop.payload.get('transactionId')}, "
            f"but the CSMS assigned {started.transaction_id}",
            started.entry,
            stop,
        )
    meter_stop = stop.payload.get("meterStop")
    if not isinstance(meter_stop, int):
        raise ctx.fail("StopTransaction carries no meterStop reading", stop)
    readings = check_meter_values(ctx, started.transaction_id, started.mark)
    for status in statuses(ctx, started.mark):
        if (
            status.seq < stop.seq
            and status.payload is not None
            and status.payload["status"] not in DURING_TRANSACTION
        ):
            raise ctx.fail(
                f"connector reported {status.payload['status']} during transaction {started.transaction_id}",
                status,
            )
    if meter_stop < started.meter_start:
        raise ctx.fail(
            f"meterStop {meter_stop} is below meterStart {started.meter_start}", started.entry, stop
        )
    if readings and Decimal(meter_stop) < readings[-1][1]:
        raise ctx.fail(
            f"meterStop {meter_stop} is below the last reading {readings[-1][1]}", readings[-1][0], stop
        )
    reason = stop.payload.get("reason", "Local")
    if reason not in reasons:
        raise ctx.fail(f"StopTransaction reason {reason!r}, expected {' or '.join(reasons)}", stop)
    await ctx.wait_for(
        "StatusNotification",
        lambda p: p["connectorId"] == ctx.settings.connector and p["status"] in ("Available", "Finishing"),
        since=stop.seq - 1,
        what="StatusNotification Finishing or Available after the stop",
    )
    check_status_sequence(ctx, started.mark)
    return stop
