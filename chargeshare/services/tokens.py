"""Operators' and hosts' side of id tokens: add, block, list; a charger's walk-in setting.

Chargers' side (Authorize, transaction start) is `ChargingService.authorization` and `start`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.domain.tokens import IdToken, TokenStatus, TokenType, check_token
from chargeshare.services.clock import Clock
from chargeshare.services.ports import Store

MAX_WALK_IN_PRICE = 1_000  # pence per kWh: ten pounds is no domestic tariff, only a typo


@dataclass(frozen=True)
class TokenView:
    token: IdToken
    status_now: TokenStatus  # what a charger is answered now (an Accepted token past expiry: Expired)


class TokenService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def add(
        self,
        driver_id: int,
        value: str,
        *,
        type_: TokenType = TokenType.ISO14443,
        status: TokenStatus = TokenStatus.ACCEPTED,
        expires_at: datetime | None = None,
        group_id: str | None = None,
        master_pass: bool = False,
    ) -> TokenView:
        """Raise InvalidRequest for a value no charger could be told, one already a token or another
        driver's id tag (in any case of its letters: `domain.tokens.token_key`); NotFound for an
        unknown driver."""
        check_token(value, group_id, expires_at)
        now = self.clock.now()
        with self.store.transaction() as tx:
            token_id = tx.tokens.add(
                driver_id=driver_id,
                value=value,
                type_=type_,
                status=status,
                expires_at=expires_at,
                group_id=group_id,
                master_pass=master_pass,
                created_at=now,
            )
            token = tx.tokens.get(token_id)
        return TokenView(token, token.status_at(now))

    def set_status(self, value: str, status: TokenStatus) -> TokenView:
        """Block (or reinstate, expire, invalidate) the token of this value (in any case: idTags are
        case-insensitive). A driver's booking id tag with no token row yet gets one, so it can be
        blocked like any card."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            token = tx.tokens.by_value(value)
            if token is None:
                driver = tx.accounts.driver_by_tag(value)
                if driver is None:
                    raise NotFound(f"no token {value!r}")
                token_id = tx.tokens.add(
                    driver_id=driver.driver_id,
                    value=driver.id_tag,  # as the driver's tag is spelt, whatever case it was named in
                    type_=TokenType.CENTRAL,
                    status=status,
                    expires_at=None,
                    group_id=None,
                    master_pass=False,
                    created_at=now,
                )
            else:
                token_id = token.token_id
                tx.tokens.set_status(token_id, status)
            token = tx.tokens.get(token_id)
        return TokenView(token, token.status_at(now))

    def block(self, value: str) -> TokenView:
        return self.set_status(value, TokenStatus.BLOCKED)

    def list(self, driver_id: int | None = None) -> Sequence[TokenView]:
        now = self.clock.now()
        with self.store.reading() as tx:
            if driver_id is not None:
                tx.accounts.driver(driver_id)  # NotFound for an unknown driver
            return [TokenView(k, k.status_at(now)) for k in tx.tokens.all(driver_id)]

    def set_walk_in(self, charger_id: int, price_per_kwh: int | None) -> None:
        """Let any valid token charge on the charger without a booking, at this price per kWh; None:
        bookings only. Raises NotFound for an unknown charger."""
        if price_per_kwh is not None and not 0 < price_per_kwh <= MAX_WALK_IN_PRICE:
            raise InvalidRequest(f"a walk-in price is 1 to {MAX_WALK_IN_PRICE} pence per kWh")
        with self.store.transaction() as tx:
            tx.tokens.set_walk_in(charger_id, price_per_kwh)

    def walk_in_price(self, charger_id: int) -> int | None:
        with self.store.reading() as tx:
            tx.chargers.by_id(charger_id)
            return tx.tokens.walk_in_price(charger_id)
