"""The caller's own account: who they are, and the driver's tag or the host's KYC status."""

from __future__ import annotations

from dataclasses import dataclass

from chargeshare.domain.accounts import Principal
from chargeshare.services.ports import Store


@dataclass(frozen=True)
class AccountView:
    account_id: int
    email: str
    role: str
    driver_id: int | None
    host_id: int | None
    id_tag: str | None  # drivers only
    kyc_status: str | None  # hosts only


class AccountViews:
    def __init__(self, store: Store) -> None:
        self.store = store

    def me(self, who: Principal) -> AccountView:
        with self.store.reading() as tx:
            account = tx.accounts.get(who.account_id)
            driver = None if account.driver_id is None else tx.accounts.driver(account.driver_id)
            host = None if account.host_id is None else tx.accounts.host(account.host_id)
        return AccountView(
            account_id=account.account_id,
            email=account.email,
            role=account.role,
            driver_id=account.driver_id,
            host_id=account.host_id,
            id_tag=None if driver is None else driver.id_tag,
            kyc_status=None if host is None else host.kyc_status,
        )
