"""The payments outbox: gateway steps, each under its idempotency key, retried until done or dead."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Integer, bindparam, insert, select, update

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
        next_attempt_at=bindparam("now"),
        created_at=bindparam("now"),
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
UPDATE = DirectStatement(
    update(t.payment_outbox)
    .where(_o.id == bindparam("item_pk"))
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("tries"),
        next_attempt_at=bindparam("next_at"),
        last_error=bindparam("error_text"),
        done_at=bindparam("done"),
    )
)

STATEMENTS = {
    "outbox.by_key": BY_KEY,
    "outbox.enqueue": ENQUEUE,
    "outbox.due": DUE,
    "outbox.pending_of": PENDING_OF,
    "outbox.update": UPDATE,
}


class SqlPaymentsOutbox:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def enqueue(self, booking_id: int, step: str, amount: int, key: str, now: datetime) -> bool:
        if self.get(key) is not None:
            return False
        params = {"booking_pk": booking_id, "step_name": step, "amount_p": amount, "key": key, "now": now}
        ENQUEUE.write(self.conn, params)
        return True

    def get(self, key: str) -> OutboxItem | None:
        r = BY_KEY.first_mapping(self.conn, {"key": key})
        return None if r is None else outbox_item(r)

    def due(self, now: datetime, limit: int) -> Sequence[OutboxItem]:
        return [outbox_item(r) for r in DUE.mappings(self.conn, {"now": now, "most": limit})]

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
        status: str,
        attempts: int,
        next_attempt_at: datetime,
        last_error: str | None,
        done_at: datetime | None = None,
    ) -> None:
        params = {
            "item_pk": item_id,
            "new_status": status,
            "tries": attempts,
            "next_at": next_attempt_at,
            "error_text": None if last_error is None else last_error[:500],
            "done": done_at,
        }
        UPDATE.write(self.conn, params)
