"""The payments outbox: gateway steps, each under its idempotency key, retried until done or dead."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, case, func, insert, or_, select, update

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.rows import outbox_item
from chargeshare.services.records import OutboxItem

_o = t.payment_outbox.c

BY_KEY = DirectStatement(select(t.payment_outbox).where(_o.idempotency_key == bindparam("key")))
ENQUEUE = DirectStatement(
    insert(t.payment_outbox).values(
        booking_id=bindparam("booking_pk"),
        step=bindparam("step_name"),
        amount=bindparam("amount_p"),
        idempotency_key=bindparam("key"),
        status="pending",
        attempts=0,
        declines=0,
        next_attempt_at=bindparam("due"),
        created_at=bindparam("now"),
        claimed_by=bindparam("worker"),
        lease_until=bindparam("lease", type_=t.UTCDateTime()),
    )
)
_UNHELD = or_(_o.lease_until.is_(None), _o.lease_until <= bindparam("now"))


def _claim(candidates: Any) -> DirectStatement:
    """Take the candidate rows for one worker. On PostgreSQL rows another transaction is claiming
    are skipped (SKIP LOCKED), not waited for; SQLite's write transactions are serialized anyway."""
    chosen = candidates.with_for_update(skip_locked=True)
    return DirectStatement(
        update(t.payment_outbox)
        .where(_o.id.in_(chosen))
        .values(claimed_by=bindparam("worker"), lease_until=bindparam("lease", type_=t.UTCDateTime()))
        .returning(*t.payment_outbox.c)
    )


CLAIM_DUE = _claim(
    select(_o.id)
    .where(_o.status == "pending", _o.next_attempt_at <= bindparam("now"), _UNHELD)
    .order_by(_o.next_attempt_at, _o.id)
    .limit(bindparam("most", type_=Integer))
)
CLAIM_OF = _claim(
    select(_o.id).where(_o.booking_id == bindparam("booking_pk"), _o.status == "pending", _UNHELD)
)
FINISH = DirectStatement(
    update(t.payment_outbox)
    .where(_o.id == bindparam("item_pk"), _o.claimed_by == bindparam("worker"), _o.status == "pending")
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("tries"),
        next_attempt_at=bindparam("next_at"),
        last_error=bindparam("error_text"),
        done_at=bindparam("done"),
        reference=func.coalesce(bindparam("ref", type_=_o.reference.type), _o.reference),
        declines=_o.declines + bindparam("more_declines", type_=Integer),
        claimed_by=None,
        lease_until=None,
    )
)
DUE = DirectStatement(
    select(t.payment_outbox)
    .where(_o.status == "pending", _o.next_attempt_at <= bindparam("now"))
    .order_by(_o.next_attempt_at, _o.id)
    .limit(bindparam("most", type_=Integer))
)
PENDING_OF = DirectStatement(
    select(t.payment_outbox)
    .where(_o.booking_id == bindparam("booking_pk"), _o.status == "pending")
    .order_by(_o.id)
)
# A compare-and-set: the step is changed only if it is still in the state read, with the attempts
# read, and no worker holds it, so an operator's reconcile never revives a step a worker finished,
# takes one it is working, nor puts back the untried state of one a worker tried since the read.
UPDATE = DirectStatement(
    update(t.payment_outbox)
    .where(
        _o.id == bindparam("item_pk"),
        _o.status == bindparam("status_read"),
        _o.attempts == bindparam("attempts_read", type_=Integer),
        _UNHELD,
    )
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("tries"),
        next_attempt_at=bindparam("next_at"),
        last_error=bindparam("error_text"),
        done_at=bindparam("done"),
        claimed_by=None,
        lease_until=None,
    )
)
# Only a step no worker ever claimed: once one has, a gateway call may have gone out under its key.
# A claim taken back by reconcile (attempts reset, claim cleared) leaves its last_error behind.
REPRICE_UNWORKED = DirectStatement(
    update(t.payment_outbox)
    .where(
        _o.idempotency_key == bindparam("key"),
        _o.status == "pending",
        _o.attempts == 0,
        _o.claimed_by.is_(None),
        _o.last_error.is_(None),
    )
    .values(amount=bindparam("new_amount"))
)

STATEMENTS = {
    "outbox.by_key": BY_KEY,
    "outbox.reprice_unworked": REPRICE_UNWORKED,
    "outbox.enqueue": ENQUEUE,
    "outbox.due": DUE,
    "outbox.pending_of": PENDING_OF,
    "outbox.update": UPDATE,
    "outbox.claim_due": CLAIM_DUE,
    "outbox.claim_of": CLAIM_OF,
    "outbox.finish": FINISH,
}


class SqlPaymentsOutbox:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def enqueue(
        self,
        booking_id: int,
        step: str,
        amount: int,
        key: str,
        now: datetime,
        *,
        due_at: datetime | None = None,
        claimed_by: str | None = None,
    ) -> bool:
        if self.get(key) is not None:
            return False
        due = now if due_at is None else due_at
        params = {
            "booking_pk": booking_id,
            "step_name": step,
            "amount_p": amount,
            "key": key,
            "now": now,
            "due": due,
            "worker": claimed_by,
            "lease": None if claimed_by is None else due,
        }
        ENQUEUE.write(self.conn, params)
        return True

    def claim_due(
        self, now: datetime, limit: int, worker: str, lease_until: datetime
    ) -> Sequence[OutboxItem]:
        params = {"now": now, "most": limit, "worker": worker, "lease": lease_until}
        return _oldest_first(CLAIM_DUE.mappings(self.conn, params))

    def claim_of(
        self, booking_id: int, now: datetime, worker: str, lease_until: datetime
    ) -> Sequence[OutboxItem]:
        params = {"booking_pk": booking_id, "now": now, "worker": worker, "lease": lease_until}
        return sorted((outbox_item(r) for r in CLAIM_OF.mappings(self.conn, params)), key=lambda i: i.item_id)

    def finish(
        self,
        item_id: int,
        worker: str,
        *,
        status: str,
        attempts: int,
        next_attempt_at: datetime,
        last_error: str | None,
        done_at: datetime | None = None,
        reference: str | None = None,
        declined: bool = False,
    ) -> bool:
        params = {
            "item_pk": item_id,
            "worker": worker,
            "new_status": status,
            "tries": attempts,
            "next_at": next_attempt_at,
            "error_text": None if last_error is None else last_error[:500],
            "done": done_at,
            "ref": reference,
            "more_declines": int(declined),
        }
        return FINISH.write(self.conn, params) == 1

    def reprice_unworked(self, key: str, amount: int) -> bool:
        return REPRICE_UNWORKED.write(self.conn, {"key": key, "new_amount": amount}) == 1

    def get(self, key: str) -> OutboxItem | None:
        r = BY_KEY.first_mapping(self.conn, {"key": key})
        return None if r is None else outbox_item(r)

    def due(self, now: datetime, limit: int) -> Sequence[OutboxItem]:
        return [outbox_item(r) for r in DUE.mappings(self.conn, {"now": now, "most": limit})]

    def next_claimable_at(self) -> datetime | None:
        at = case((_o.lease_until > _o.next_attempt_at, _o.lease_until), else_=_o.next_attempt_at).label(
            "claimable_at"
        )
        row = self.conn.execute(
            select(t.payment_outbox.c.next_attempt_at, t.payment_outbox.c.lease_until)
            .where(_o.status == "pending")
            .order_by(at)
            .limit(1)
        ).first()
        if row is None:
            return None
        due: datetime = row[0]
        lease: datetime | None = row[1]
        return due if lease is None or lease <= due else lease

    def count_by_status(self) -> dict[str, int]:
        rows = self.conn.execute(select(_o.status, func.count()).group_by(_o.status))
        return {str(status): int(n) for status, n in rows}

    def all(self, status: str | None = None) -> Sequence[OutboxItem]:
        q = select(t.payment_outbox).order_by(_o.id)
        if status is not None:
            q = q.where(_o.status == status)
        return [outbox_item(r) for r in self.conn.execute(q).mappings()]

    def pending_of(self, booking_id: int) -> Sequence[OutboxItem]:
        return [outbox_item(r) for r in PENDING_OF.mappings(self.conn, {"booking_pk": booking_id})]

    def update(
        self,
        item_id: int,
        *,
        expected: str,
        expected_attempts: int,
        now: datetime,
        status: str,
        attempts: int,
        next_attempt_at: datetime,
        last_error: str | None,
        done_at: datetime | None = None,
    ) -> bool:
        params = {
            "item_pk": item_id,
            "status_read": expected,
            "attempts_read": expected_attempts,
            "now": now,
            "new_status": status,
            "tries": attempts,
            "next_at": next_attempt_at,
            "error_text": None if last_error is None else last_error[:500],
            "done": done_at,
        }
        return UPDATE.write(self.conn, params) == 1


def _oldest_first(rows: Iterable[Mapping[str, Any]]) -> list[OutboxItem]:
    # RETURNING gives rows in no promised order.
    return sorted((outbox_item(r) for r in rows), key=lambda i: (i.next_attempt_at, i.item_id))
