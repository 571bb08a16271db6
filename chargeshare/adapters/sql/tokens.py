"""Drivers' id tokens, and the chargers that take walk-in tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.folded import Folded, writing_names
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.domain.tokens import IdToken, TokenStatus, TokenType, token_key

_t = t.id_tokens.c
_w = t.walk_in_chargers.c

# Read on every Authorize and start (a tag is looked up as a token first).
BY_VALUE = DirectStatement(select(t.id_tokens).where(Folded(_t.value) == bindparam("token_value")))
WALK_IN_PRICE = DirectStatement(select(_w.price_per_kwh).where(_w.charger_id == bindparam("charger_pk")))

STATEMENTS = {"tokens.by_value": BY_VALUE, "tokens.walk_in_price": WALK_IN_PRICE}


def _token(r: Any) -> IdToken:
    return IdToken(
        r.id,
        r.driver_id,
        r.value,
        TokenType(r.type),
        TokenStatus(r.status),
        r.expires_at,
        r.group_id,
        bool(r.master_pass),
        r.created_at,
    )


class SqlIdTokens:
    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def add(
        self,
        *,
        driver_id: int,
        value: str,
        type_: TokenType,
        status: TokenStatus,
        expires_at: datetime | None,
        group_id: str | None,
        master_pass: bool,
        created_at: datetime,
    ) -> int:
        d = t.drivers.c
        if self.conn.execute(select(d.id).where(d.id == driver_id)).first() is None:
            raise NotFound(f"no driver {driver_id}")
        # Another driver registering this tag meanwhile waits for this unit of work, and then finds
        # the token (`SqlAccounts.add_driver`); a token of it in another case trips the index below.
        writing_names(self.conn)
        owner = self.conn.execute(select(d.id).where(Folded(d.id_tag) == token_key(value))).first()
        if owner is not None and owner[0] != driver_id:
            raise InvalidRequest(f"{value!r} is another driver's id tag")
        q = (
            insert(t.id_tokens)
            .values(
                driver_id=driver_id,
                value=value,
                type=type_.value,
                status=status.value,
                expires_at=expires_at,
                group_id=group_id,
                master_pass=master_pass,
                created_at=created_at,
            )
            .returning(_t.id)
        )
        try:
            # A savepoint, so a duplicate leaves the unit of work usable on PostgreSQL.
            with self.conn.begin_nested():
                return int(self.conn.execute(q).scalar_one())
        except IntegrityError as exc:
            raise InvalidRequest(f"token {value!r} already exists") from exc

    def get(self, token_id: int) -> IdToken:
        r = self.conn.execute(select(t.id_tokens).where(_t.id == token_id)).first()
        if r is None:
            raise NotFound(f"no token {token_id}")
        return _token(r)

    def by_value(self, value: str) -> IdToken | None:
        r = BY_VALUE.first_mapping(self.conn, {"token_value": token_key(value)})
        return None if r is None else _token(SimpleNamespace(**r))

    def set_status(self, token_id: int, status: TokenStatus) -> None:
        done = self.conn.execute(update(t.id_tokens).where(_t.id == token_id).values(status=status.value))
        if done.rowcount == 0:
            raise NotFound(f"no token {token_id}")

    def all(self, driver_id: int | None = None) -> Sequence[IdToken]:
        q = select(t.id_tokens).order_by(_t.id)
        if driver_id is not None:
            q = q.where(_t.driver_id == driver_id)
        return [_token(r) for r in self.conn.execute(q)]

    def set_walk_in(self, charger_id: int, price_per_kwh: int | None) -> None:
        c = t.chargers.c
        if self.conn.execute(select(c.id).where(c.id == charger_id)).first() is None:
            raise NotFound(f"no charger {charger_id}")
        self.conn.execute(t.walk_in_chargers.delete().where(_w.charger_id == charger_id))
        if price_per_kwh is not None:
            self.conn.execute(
                insert(t.walk_in_chargers).values(charger_id=charger_id, price_per_kwh=price_per_kwh)
            )

    def walk_in_price(self, charger_id: int) -> int | None:
        r = WALK_IN_PRICE.first(self.conn, {"charger_pk": charger_id})
        return None if r is None else int(r[0])
