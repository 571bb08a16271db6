"""Rules over captured OCPP 2.0.1 frames: a transaction's TransactionEvents (one id, Started first,
Ended last, seqNo rising, meter readings numeric and rising, a final reading on Ended) and the
connector's status while it runs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chargeshare.certify.context import CaseContext
from chargeshare.certify.wirelog import CALLRESULT, Entry

ENERGY = "Energy.Active.Import.Register"


def token(tag: str) -> dict[str, str]:
    return {"idToken": tag, "type": "ISO14443"}


def tx_id_of(p: dict[str, Any]) -> str:
    return str(p["transactionInfo"]["transactionId"])


def statuses(ctx: CaseContext, since: int) -> list[Entry]:
    return ctx.find("StatusNotification", lambda p: p["evseId"] == ctx.settings.connector, since=since)


def energy_readings(ctx: CaseContext, e: Entry) -> list[Decimal]:
    """The energy register readings of one TransactionEvent, in Wh; anything not a number fails."""
    assert e.payload is not None
    found = []
    for mv in e.payload.get("meterValue", []):
        for sv in mv.get("sampledValue", []):
            value = sv.get("value")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ctx.fail(f"TransactionEvent carries a reading that is not a number: {value!r}", e)
            if sv.get("measurand", ENERGY) == ENERGY and not sv.get("phase"):
                unit = (sv.get("unitOfMeasure") or {}).get("unit", "Wh")
                multiplier = (sv.get("unitOfMeasure") or {}).get("multiplier", 0)
                wh = Decimal(str(value)) * (Decimal(10) ** int(multiplier))
                found.append(wh * 1000 if unit == "kWh" else wh)
    return found


@dataclass(frozen=True)
class Started:
    entry: Entry
    transaction_id: str
    mark: int


async def expect_started(
    ctx: CaseContext, tag: str, *, since: int, remote_start_id: int | None = None
) -> Started:
    """A transaction for our token: Started first, the connector Occupied, and a periodic reading."""
    with_token = await ctx.wait_for(
        "TransactionEvent",
        lambda p: p["idToken"]["idToken"] == tag,
        since=since,
        what=f"TransactionEvent with the token {tag}",
    )
    assert with_token.payload is not None
    tx = tx_id_of(with_token.payload)
    first = ctx.find("TransactionEvent", lambda p: tx_id_of(p) == tx, since=since)[0]
    assert first.payload is not None
    if first.payload["eventType"] != "Started":
        raise ctx.fail(f"transaction {tx} began with {first.payload['eventType']}, not Started", first)
    if remote_start_id is not None:
        started_ids = [
            e
            for e in ctx.find("TransactionEvent", lambda p: tx_id_of(p) == tx, since=since)
            if e.payload is not None and e.payload["transactionInfo"].get("remoteStartId") == remote_start_id
        ]
        if not started_ids:
            raise ctx.fail(f"no TransactionEvent of {tx} carries remoteStartId {remote_start_id}", first)
    await ctx.wait_for(
        "TransactionEvent",
        lambda p: tx_id_of(p) == tx and p["eventType"] == "Updated" and bool(p["meterValue"]),
        since=first.seq,
        what=f"a meter reading for transaction {tx}",
    )
    check_statuses_during(ctx, tx, first.seq, None)
    return Started(first, tx, first.seq - 1)


def check_statuses_during(ctx: CaseContext, tx: str, start_seq: int, end_seq: int | None) -> None:
    for s in statuses(ctx, start_seq):
        if end_seq is not None and s.seq > end_seq:
            break
        if s.payload is not None and s.payload["connectorStatus"] != "Occupied":
            raise ctx.fail(f"connector reported {s.payload['connectorStatus']} during transaction {tx}", s)


async def expect_ended(ctx: CaseContext, started: Started, *, reasons: tuple[str, ...]) -> Entry:
    ended = await ctx.wait_for(
        "TransactionEvent",
        lambda p: p["eventType"] == "Ended",
        since=started.mark,
        what="TransactionEvent Ended",
    )
    assert ended.payload is not None
    ctx.cite(ctx.log.answer_to(ended))
    if tx_id_of(ended.payload) != started.transaction_id:
        raise ctx.fail(
            f"TransactionEvent Ended names transaction {tx_id_of(ended.payload)}, "
            f"but the transaction started as {started.transaction_id}",
            started.entry,
            ended,
        )
    events = ctx.find("TransactionEvent", lambda p: tx_id_of(p) == started.transaction_id, since=started.mark)
    seqs = [e.payload["seqNo"] for e in events if e.payload is not None]
    if any(b <= a for a, b in itertools.pairwise(seqs)):
        raise ctx.fail(f"seqNo does not rise through transaction {started.transaction_id}: {seqs}", *events)
    after = [e for e in events if e.seq > ended.seq]
    if after:
        raise ctx.fail(f"transaction {started.transaction_id} has events after it Ended", ended, *after)
    readings: list[tuple[Entry, Decimal]] = []
    for e in events:
        for wh in energy_readings(ctx, e):
            if readings and wh < readings[-1][1]:
                raise ctx.fail("the energy register ran backwards", readings[-1][0], e)
            readings.append((e, wh))
    final = energy_readings(ctx, ended)
    if not final:
        raise ctx.fail("TransactionEvent Ended carries no final energy reading", ended)
    reason = ended.payload["transactionInfo"].get("stoppedReason", "Local")
    if reason not in reasons:
        raise ctx.fail(f"stoppedReason {reason!r}, expected {' or '.join(reasons)}", ended)
    check_statuses_during(ctx, started.transaction_id, started.entry.seq, ended.seq)
    answer = ctx.log.answer_to(ended)
    if answer is None or answer.kind != CALLRESULT:
        raise ctx.fail("TransactionEvent Ended was not acknowledged", ended, answer)
    return ended
