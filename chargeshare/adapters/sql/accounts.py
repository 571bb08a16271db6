"""Hosts, drivers, sign-in accounts, hosts' KYC status and seller details."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql import seller_details as seller_rows
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.folded import Folded, writing_names
from chargeshare.adapters.sql.rows import insert_of
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.domain.seller_details import SellerDetails
from chargeshare.domain.tokens import token_key
from chargeshare.services.records import AccountRecord, DriverRecord, HostRecord

ADD_HOST = DirectStatement(insert_of(t.hosts, "name").returning(t.hosts.c.id))
ADD_DRIVER = DirectStatement(insert_of(t.drivers, "name", "id_tag").returning(t.drivers.c.id))
DRIVER_BY_ID = DirectStatement(select(t.drivers).where(t.drivers.c.id == bindparam("driver_pk")))
# `tag` is bound folded (`token_key`): idTags are case-insensitive.
DRIVER_BY_TAG = DirectStatement(select(t.drivers).where(Folded(t.drivers.c.id_tag) == bindparam("tag")))

STATEMENTS = {
    "accounts.add_host": ADD_HOST,
    "accounts.add_driver": ADD_DRIVER,
    "accounts.driver_by_id": DRIVER_BY_ID,
    "accounts.driver_by_tag": DRIVER_BY_TAG,
}


class SqlAccounts:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def add_host(self, name: str) -> int:
        return self._inserted(ADD_HOST, {"row_name": name})

    def add_driver(self, name: str, id_tag: str) -> int:
        # Checked in turn with tokens' writers (`writing_names`): a token added meanwhile is seen.
        writing_names(self.conn)
        key = token_key(id_tag)
        if DRIVER_BY_TAG.first(self.conn, {"tag": key}) is not None:
            raise InvalidRequest(f"id_tag {id_tag!r} is taken")
        if self.conn.execute(select(t.id_tokens.c.id).where(Folded(t.id_tokens.c.value) == key)).first():
            raise InvalidRequest(f"id_tag {id_tag!r} is taken")
        return self._inserted(ADD_DRIVER, {"row_name": name, "row_id_tag": id_tag})

    def _inserted(self, stmt: DirectStatement, row: dict[str, Any]) -> int:
        """Run an INSERT ... RETURNING id; the new row's id."""
        found = stmt.first(self.conn, row)
        assert found is not None
        return int(found[0])

    def driver(self, driver_id: int) -> DriverRecord:
        r = DRIVER_BY_ID.first_mapping(self.conn, {"driver_pk": driver_id})
        if r is None:
            raise NotFound(f"no driver {driver_id}")
        return DriverRecord(r["id"], r["name"], r["id_tag"])

    def driver_by_tag(self, id_tag: str) -> DriverRecord | None:
        r = DRIVER_BY_TAG.first_mapping(self.conn, {"tag": token_key(id_tag)})
        return None if r is None else DriverRecord(r["id"], r["name"], r["id_tag"])

    def host(self, host_id: int) -> HostRecord:
        h, k = t.hosts.c, t.host_kyc.c
        r = self.conn.execute(
            select(h.id, h.name, k.status)
            .select_from(t.hosts.outerjoin(t.host_kyc, k.host_id == h.id))
            .where(h.id == host_id)
        ).first()
        if r is None:
            raise NotFound(f"no host {host_id}")
        return HostRecord(r[0], r[1], r[2] or "pending")

    def set_host_kyc(self, host_id: int, status: str, at: datetime) -> None:
        self.host(host_id)
        self._set_kyc(t.host_kyc, "host_id", host_id, status, at)

    def verified_hosts(self) -> set[int]:
        k = t.host_kyc.c
        return {int(r[0]) for r in self.conn.execute(select(k.host_id).where(k.status == "verified"))}

    def set_driver_kyc(self, driver_id: int, status: str, at: datetime) -> None:
        self.driver(driver_id)
        self._set_kyc(t.driver_kyc, "driver_id", driver_id, status, at)

    def _set_kyc(self, table: Table, key: str, key_id: int, status: str, at: datetime) -> None:
        """A host's or a driver's KYC outcome: the row updated, or made on the first check."""
        changed = self.conn.execute(
            update(table).where(table.c[key] == key_id).values(status=status, updated_at=at)
        ).rowcount
        if not changed:
            self.conn.execute(insert(table).values({key: key_id, "status": status, "updated_at": at}))

    def driver_kyc(self, driver_id: int) -> str:
        self.driver(driver_id)
        k = t.driver_kyc.c
        found = self.conn.execute(select(k.status).where(k.driver_id == driver_id)).first()
        return "pending" if found is None else str(found[0])

    def verified_drivers(self) -> set[int]:
        k = t.driver_kyc.c
        return {int(r[0]) for r in self.conn.execute(select(k.driver_id).where(k.status == "verified"))}

    def lock_host(self, host_id: int) -> None:
        # SQLite's write transactions are serialized already (BEGIN IMMEDIATE). FOR NO KEY UPDATE:
        # a stop that already inserted a row naming the host (a notification: key share) and then
        # takes this for its home's export purchase cannot deadlock with another such stop.
        if self.dialect == "postgresql":
            hosts = t.hosts.c
            self.conn.execute(select(hosts.id).where(hosts.id == host_id).with_for_update(key_share=True))

    def lock_driver(self, driver_id: int) -> None:
        if self.dialect == "postgresql":  # SQLite's write transactions are serialized already
            self.conn.execute(select(t.drivers.c.id).where(t.drivers.c.id == driver_id).with_for_update())

    def add(
        self,
        *,
        email: str,
        password_hash: str,
        role: str,
        created_at: datetime,
        driver_id: int | None = None,
        host_id: int | None = None,
    ) -> int:
        if self.by_email(email) is not None:
            raise InvalidRequest("an account with this email exists")
        try:
            with self.conn.begin_nested():
                stmt = insert(t.accounts).values(
                    email=email,
                    password_hash=password_hash,
                    role=role,
                    driver_id=driver_id,
                    host_id=host_id,
                    created_at=created_at,
                )
                return int(self.conn.execute(stmt.returning(t.accounts.c.id)).scalar_one())
        except IntegrityError as exc:  # a concurrent sign-up with the same email won
            raise InvalidRequest("an account with this email exists") from exc

    def _account(self, where: Any) -> AccountRecord | None:
        r = self.conn.execute(select(t.accounts).where(where)).mappings().first()
        return None if r is None else _account_record(r)

    def by_email(self, email: str) -> AccountRecord | None:
        return self._account(t.accounts.c.email == email)

    def all(self) -> Sequence[AccountRecord]:
        rows = self.conn.execute(select(t.accounts).order_by(t.accounts.c.id)).mappings()
        return [_account_record(r) for r in rows]

    def hosts(self) -> Sequence[HostRecord]:
        h, k = t.hosts.c, t.host_kyc.c
        rows = self.conn.execute(
            select(h.id, h.name, k.status)
            .select_from(t.hosts.outerjoin(t.host_kyc, k.host_id == h.id))
            .order_by(h.id)
        )
        return [HostRecord(r[0], r[1], r[2] or "pending") for r in rows]

    def seller_details(self, host_id: int) -> SellerDetails | None:
        self.host(host_id)
        return seller_rows.read_one(self.conn, host_id)

    def set_seller_details(self, host_id: int, details: SellerDetails, at: datetime) -> None:
        self.host(host_id)
        seller_rows.write(self.conn, host_id, details, at)

    def all_seller_details(self) -> dict[int, SellerDetails]:
        return seller_rows.read_all(self.conn)

    def get(self, account_id: int) -> AccountRecord:
        found = self._account(t.accounts.c.id == account_id)
        if found is None:
            raise NotFound(f"no account {account_id}")
        return found


def _account_record(r: Any) -> AccountRecord:
    return AccountRecord(
        r["id"], r["email"], r["password_hash"], r["role"], r["driver_id"], r["host_id"], r["created_at"]
    )
