"""Fleet accounts, block contracts, their occurrences and invoices (`fleet_*` tables)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.domain.fleet import (
    BlockRule,
    ContractPolicy,
    FleetAccount,
    FleetContract,
    InvoiceLine,
    IssuedInvoice,
    LineKind,
    Occurrence,
    SeenRequest,
)

_a, _c, _cc = t.fleet_accounts.c, t.fleet_contracts.c, t.fleet_contract_connectors.c
_o, _i, _l = t.fleet_occurrences.c, t.fleet_invoices.c, t.fleet_invoice_lines.c
_r = t.fleet_requests.c
_ACCOUNTS = select(_a.id, _a.name, _a.driver_id)
_OCCURRENCES = select(_o.booking_id, _o.contract_id, _o.fleet_id)
# Asked of every booking's settlement (is it a fleet's?).
OCCURRENCE = DirectStatement(_OCCURRENCES.where(_o.booking_id == bindparam("booking_pk")))

STATEMENTS = {"fleet.occurrence": OCCURRENCE}
_INVOICES = select(_i.id, _i.fleet_id, _i.month, _i.total, _i.issued_at, _i.paid, _i.paid_at)


def minute_of(at: time) -> int:
    return at.hour * 60 + at.minute


def time_of(minute: int) -> time:
    return time(minute // 60, minute % 60)


def _account(r: Any) -> FleetAccount:
    return FleetAccount(r.id, r.name, r.driver_id)


def _invoice(r: Any) -> IssuedInvoice:
    return IssuedInvoice(r.id, r.fleet_id, r.month, r.total, r.issued_at, r.paid, r.paid_at)


class SqlFleets:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def add_account(self, name: str, driver_id: int, created_at: datetime) -> int:
        if self.account_of_driver(driver_id) is not None:
            raise InvalidRequest(f"driver {driver_id} already charges for a fleet")
        row = {"name": name, "driver_id": driver_id, "created_at": created_at}
        return int(self.conn.execute(insert(t.fleet_accounts).values(row).returning(_a.id)).scalar_one())

    def account(self, fleet_id: int) -> FleetAccount:
        r = self.conn.execute(_ACCOUNTS.where(_a.id == fleet_id)).first()
        if r is None:
            raise NotFound(f"no fleet {fleet_id}")
        return _account(r)

    def account_of_driver(self, driver_id: int) -> FleetAccount | None:
        r = self.conn.execute(_ACCOUNTS.where(_a.driver_id == driver_id)).first()
        return None if r is None else _account(r)

    def accounts(self) -> Sequence[FleetAccount]:
        return [_account(r) for r in self.conn.execute(_ACCOUNTS.order_by(_a.id))]

    def add_contract(
        self,
        fleet_id: int,
        rule: BlockRule,
        policy: ContractPolicy,
        connector_ids: Sequence[int],
        created_at: datetime,
    ) -> int:
        row = {
            "fleet_id": fleet_id,
            "weekdays": ",".join(str(d) for d in sorted(rule.weekdays)),
            "start_minute": minute_of(rule.start),
            "end_minute": minute_of(rule.end),
            "first_day": rule.first_day,
            "last_day": rule.last_day,
            "notice_s": int(policy.notice.total_seconds()),
            "late_penalty": policy.late_penalty,
            "created_at": created_at,
        }
        contract_id = int(
            self.conn.execute(insert(t.fleet_contracts).values(row).returning(_c.id)).scalar_one()
        )
        self.conn.execute(
            insert(t.fleet_contract_connectors),
            [{"contract_id": contract_id, "connector_id": k} for k in dict.fromkeys(connector_ids)],
        )
        return contract_id

    def _contracts(self, *where: Any) -> list[FleetContract]:
        rows = self.conn.execute(select(t.fleet_contracts).where(*where).order_by(_c.id)).all()
        ids = [r.id for r in rows]
        connectors: dict[int, list[int]] = {i: [] for i in ids}
        for cid, kid in self.conn.execute(
            select(_cc.contract_id, _cc.connector_id)
            .where(_cc.contract_id.in_(ids))
            .order_by(_cc.connector_id)
        ):
            connectors[cid].append(kid)
        return [
            FleetContract(
                r.id,
                r.fleet_id,
                BlockRule(
                    frozenset(int(d) for d in r.weekdays.split(",")),
                    time_of(r.start_minute),
                    time_of(r.end_minute),
                    r.first_day,
                    r.last_day,
                ),
                ContractPolicy(timedelta(seconds=r.notice_s), r.late_penalty),
                tuple(connectors[r.id]),
                r.created_at,
            )
            for r in rows
        ]

    def contract(self, contract_id: int) -> FleetContract:
        found = self._contracts(_c.id == contract_id)
        if not found:
            raise NotFound(f"no contract {contract_id}")
        return found[0]

    def contracts_of(self, fleet_id: int) -> Sequence[FleetContract]:
        return self._contracts(_c.fleet_id == fleet_id)

    def add_occurrence(self, booking_id: int, contract_id: int, fleet_id: int) -> None:
        row = {"booking_id": booking_id, "contract_id": contract_id, "fleet_id": fleet_id}
        self.conn.execute(insert(t.fleet_occurrences).values(row))

    def occurrence(self, booking_id: int) -> Occurrence | None:
        r = OCCURRENCE.first(self.conn, {"booking_pk": booking_id})
        return None if r is None else Occurrence(r[0], r[1], r[2])

    def occurrences(
        self, *, fleet_id: int | None = None, contract_id: int | None = None
    ) -> Sequence[Occurrence]:
        q = _OCCURRENCES.order_by(_o.booking_id)
        if fleet_id is not None:
            q = q.where(_o.fleet_id == fleet_id)
        if contract_id is not None:
            q = q.where(_o.contract_id == contract_id)
        return [Occurrence(r.booking_id, r.contract_id, r.fleet_id) for r in self.conn.execute(q)]

    def add_invoice(
        self, fleet_id: int, month: str, lines: Sequence[InvoiceLine], total: int, at: datetime
    ) -> int | None:
        row = {"fleet_id": fleet_id, "month": month, "total": total, "issued_at": at, "paid": 0}
        # A savepoint: a refused invoice leaves the rest of the unit of work as it was.
        try:
            with self.conn.begin_nested():
                invoice_id = int(
                    self.conn.execute(insert(t.fleet_invoices).values(row).returning(_i.id)).scalar_one()
                )
                if lines:
                    self.conn.execute(
                        insert(t.fleet_invoice_lines),
                        [
                            {
                                "entry_id": x.entry_id,
                                "invoice_id": invoice_id,
                                "booking_id": x.booking_id,
                                "kind": x.kind.value,
                                "at": x.at,
                                "amount": x.amount,
                                "energy_wh": x.energy_wh,
                            }
                            for x in lines
                        ],
                    )
        except IntegrityError:
            return None
        return invoice_id

    def invoice(self, fleet_id: int, month: str) -> IssuedInvoice | None:
        r = self.conn.execute(_INVOICES.where(_i.fleet_id == fleet_id, _i.month == month)).first()
        return None if r is None else _invoice(r)

    def invoices(self, fleet_id: int | None = None) -> Sequence[IssuedInvoice]:
        q = _INVOICES.order_by(_i.fleet_id, _i.month)
        if fleet_id is not None:
            q = q.where(_i.fleet_id == fleet_id)
        return [_invoice(r) for r in self.conn.execute(q)]

    def lines_of(self, invoice_id: int) -> Sequence[InvoiceLine]:
        rows = self.conn.execute(
            select(_l.entry_id, _l.booking_id, _l.kind, _l.at, _l.amount, _l.energy_wh)
            .where(_l.invoice_id == invoice_id)
            .order_by(_l.at, _l.entry_id)
        )
        return [
            InvoiceLine(r.entry_id, r.booking_id, LineKind(r.kind), r.at, r.amount, r.energy_wh) for r in rows
        ]

    def billed_entries(self, fleet_id: int) -> set[str]:
        rows = self.conn.execute(
            select(_l.entry_id).join(t.fleet_invoices, _i.id == _l.invoice_id).where(_i.fleet_id == fleet_id)
        )
        return {r[0] for r in rows}

    def record_payment(self, invoice_id: int, paid: int, at: datetime, *, expected: int) -> bool:
        done = self.conn.execute(
            update(t.fleet_invoices)
            .where(_i.id == invoice_id, _i.paid == expected)
            .values(paid=paid, paid_at=at)
        )
        return done.rowcount == 1

    # ---- requests under an Idempotency-Key ---------------------------------------------------------
    def claim_request(self, fleet_id: int, kind: str, key: str, fingerprint: str, at: datetime) -> bool:
        # ON CONFLICT DO NOTHING: a copy made at once waits on the key's row, then finds it taken.
        make = pg_insert if self.dialect == "postgresql" else sqlite_insert
        q = make(t.fleet_requests).values(
            fleet_id=fleet_id, kind=kind, request_key=key, fingerprint=fingerprint, made_at=at
        )
        return self.conn.execute(q.on_conflict_do_nothing().returning(_r.kind)).first() is not None

    def answer_request(self, fleet_id: int, kind: str, key: str, ref_id: int, value: int | None) -> None:
        self.conn.execute(
            update(t.fleet_requests)
            .where(_r.fleet_id == fleet_id, _r.kind == kind, _r.request_key == key)
            .values(ref_id=ref_id, value=value)
        )

    def request_seen(self, fleet_id: int, kind: str, key: str) -> SeenRequest | None:
        row = self.conn.execute(
            select(_r.fingerprint, _r.ref_id, _r.value, _r.made_at).where(
                _r.fleet_id == fleet_id, _r.kind == kind, _r.request_key == key
            )
        ).first()
        return None if row is None else SeenRequest(row.fingerprint, row.ref_id, row.value, row.made_at)
