"""Accounts and bearer headers for API tests, made through the auth service (fast password hash)."""

from __future__ import annotations

from dataclasses import dataclass

from chargeshare.bootstrap import App

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Caller:
    account_id: int
    email: str
    headers: dict[str, str]
    driver_id: int | None = None
    host_id: int | None = None

    @property
    def did(self) -> int:
        assert self.driver_id is not None
        return self.driver_id

    @property
    def hid(self) -> int:
        assert self.host_id is not None
        return self.host_id


def _caller(app: App, account_id: int) -> Caller:
    with app.store.reading() as tx:
        account = tx.accounts.get(account_id)
    token = app.auth.issue(account).token
    return Caller(
        account.account_id,
        account.email,
        {"Authorization": f"Bearer {token}"},
        account.driver_id,
        account.host_id,
    )


def driver(app: App, name: str, id_tag: str | None = None) -> Caller:
    account = app.auth.register_driver(f"{name.lower()}@drivers.example", PASSWORD, name, id_tag)
    return _caller(app, account.account_id)


def host(app: App, name: str) -> Caller:
    account = app.auth.register_host(f"{name.lower()}@hosts.example", PASSWORD, name)
    return _caller(app, account.account_id)


def admin(app: App, name: str = "ops") -> Caller:
    account = app.auth.add_admin(f"{name.lower()}@operators.example", PASSWORD)
    return _caller(app, account.account_id)
