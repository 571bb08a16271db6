"""What a host manages: their chargers, connectors, prices, calendars and access notes; their money
(earnings, payouts, the yearly statement); the seller details HMRC's platform reporting asks of
them; and the operator's KYC decision about them.

Every call names the host acting; a charger of another host is "not found", never "forbidden", so
nobody learns what others have listed.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from chargeshare.domain.accounts import KycStatus
from chargeshare.domain.availability import WeeklyWindow
from chargeshare.domain.charger import BootPolicy, ChargerSpec, ConnectorType
from chargeshare.domain.errors import NotFound
from chargeshare.domain.ledger import EntryKind, JournalEntry, host_payable
from chargeshare.domain.seller_details import SellerDetails
from chargeshare.domain.statement import YearStatement, earnings_of, year_statement
from chargeshare.services.clock import Clock
from chargeshare.services.marketplace import MarketplaceService, change_boot_policy
from chargeshare.services.ports import Store, UnitOfWork
from chargeshare.services.records import ChargerView, HostRecord

PASSWORD_BYTES = 18  # 24 URL-safe characters: inside OCPP's 16-40


@dataclass(frozen=True)
class Payout:
    entry_id: str
    amount: int
    paid_at: datetime


@dataclass(frozen=True)
class Earnings:
    host: HostRecord
    gross_consideration: int
    fees_withheld: int
    earned: int
    paid_out: int
    activities: int
    home_export_bought: int = 0  # guests' V2G export the host's home bought: charged to its payable

    @property
    def balance(self) -> int:
        """What the payable account owes the host; below 0 the host owes (its home bought more)."""
        return self.earned - self.home_export_bought - self.paid_out


class HostingService:
    def __init__(self, store: Store, marketplace: MarketplaceService, clock: Clock) -> None:
        self.store, self.marketplace, self.clock = store, marketplace, clock

    # ---- chargers --------------------------------------------------------------------------------
    def list_chargers(self, host_id: int) -> Sequence[ChargerView]:
        with self.store.reading() as tx:
            return tx.chargers.of_host(host_id)

    def charger(self, host_id: int, charger_id: int) -> ChargerView:
        with self.store.reading() as tx:
            return _own(tx, host_id, charger_id)

    def details(self, host_id: int, charger_id: int) -> tuple[ChargerView, str, list[WeeklyWindow]]:
        with self.store.reading() as tx:
            view = _own(tx, host_id, charger_id)
            return (
                view,
                tx.chargers.access_notes(charger_id),
                tx.chargers.availability([charger_id]).get(charger_id, []),
            )

    def add_charger(self, spec: ChargerSpec, access_notes: str = "") -> tuple[ChargerView, str]:
        """List a charger; returns it with its generated OCPP password (shown to the host once). It
        boots Pending, out of service, until its host accepts it (`set_boot_policy`)."""
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        pending = dataclasses.replace(spec, boot_policy=BootPolicy.PENDING)
        view = self.marketplace.add_charger(pending, password=password)
        if access_notes:
            with self.store.transaction() as tx:
                tx.chargers.set_access_notes(view.charger_id, access_notes)
        return view, password

    def update_charger(
        self,
        host_id: int,
        charger_id: int,
        *,
        title: str | None = None,
        price_per_kwh: int | None = None,
        access_notes: str | None = None,
    ) -> None:
        """A new price applies to bookings made from now; existing ones keep the price they were made at."""
        with self.store.transaction() as tx:
            _own(tx, host_id, charger_id)
            tx.chargers.update(charger_id, title=title, price_per_kwh=price_per_kwh)
            if access_notes is not None:
                tx.chargers.set_access_notes(charger_id, access_notes)

    def set_boot_policy(self, host_id: int, charger_id: int, policy: BootPolicy) -> ChargerView:
        """Accept one's own charger into service, or take it out (Pending or Rejected)."""
        with self.store.transaction() as tx:
            return change_boot_policy(tx, _own(tx, host_id, charger_id), policy)

    def remove_charger(self, host_id: int, charger_id: int) -> None:
        with self.store.reading() as tx:
            cp_id = _own(tx, host_id, charger_id).charge_point_id

        def remove(tx: UnitOfWork) -> None:
            tx.chargers.remove(_own(tx, host_id, charger_id).charge_point_id)  # still theirs, that id

        # Its id may be registered again, by anyone: its certificates must not come with it.
        self.marketplace.void_certificates(cp_id, remove)

    def set_availability(self, host_id: int, charger_id: int, windows: Sequence[WeeklyWindow]) -> None:
        with self.store.transaction() as tx:
            _own(tx, host_id, charger_id)
            tx.chargers.set_availability(charger_id, windows)

    def add_connector(
        self, host_id: int, charger_id: int, connector_no: int, type_: ConnectorType, max_power_w: int
    ) -> None:
        with self.store.transaction() as tx:
            _own(tx, host_id, charger_id)
            tx.chargers.add_connector(charger_id, connector_no, type_, max_power_w)

    def update_connector(
        self,
        host_id: int,
        charger_id: int,
        connector_no: int,
        *,
        type_: ConnectorType | None = None,
        max_power_w: int | None = None,
    ) -> None:
        with self.store.transaction() as tx:
            _own(tx, host_id, charger_id)
            tx.chargers.update_connector(charger_id, connector_no, type_=type_, max_power_w=max_power_w)

    def remove_connector(self, host_id: int, charger_id: int, connector_no: int) -> None:
        with self.store.transaction() as tx:
            _own(tx, host_id, charger_id)
            tx.chargers.remove_connector(charger_id, connector_no)

    # ---- money -----------------------------------------------------------------------------------
    def earnings(self, host_id: int) -> Earnings:
        with self.store.reading() as tx:
            host = tx.accounts.host(host_id)
            entries = tx.ledger.entries(account=host_payable(host_id))
        earned = earnings_of(host_id, entries)
        payouts = _payouts(host_id, entries)
        return Earnings(
            host=host,
            gross_consideration=sum(e.consideration for e in earned),
            fees_withheld=sum(e.fee for e in earned),
            earned=sum(e.host_share for e in earned),
            paid_out=sum(p.amount for p in payouts),
            activities=len({e.booking_id for e in earned if e.consideration > 0}),
            home_export_bought=sum(e.amount for e in entries if e.kind is EntryKind.HOME_EXPORT_CREDIT),
        )

    def payouts(self, host_id: int) -> list[Payout]:
        with self.store.reading() as tx:
            tx.accounts.host(host_id)
            return _payouts(host_id, tx.ledger.entries(account=host_payable(host_id)))

    def statement(self, host_id: int, year: int) -> YearStatement:
        with self.store.reading() as tx:
            tx.accounts.host(host_id)
            entries = tx.ledger.entries(account=host_payable(host_id))
        return year_statement(host_id, year, earnings_of(host_id, entries))

    # ---- seller details (HMRC platform reporting) ---------------------------------------------------
    def seller_details(self, host_id: int) -> SellerDetails | None:
        with self.store.reading() as tx:
            return tx.accounts.seller_details(host_id)

    def set_seller_details(self, host_id: int, details: SellerDetails) -> HostRecord:
        """Keep what the host gave (checked already: `domain.seller_details`). Details that change
        after the operator verified the host send them back to pending: the checks were of the old
        ones (a changed bank account is how payouts are redirected)."""
        with self.store.transaction() as tx:
            tx.accounts.lock_host(host_id)
            before = tx.accounts.seller_details(host_id)
            tx.accounts.set_seller_details(host_id, details, self.clock.now())
            host = tx.accounts.host(host_id)
            if before != details and host.kyc_status == KycStatus.VERIFIED:
                tx.accounts.set_host_kyc(host_id, KycStatus.PENDING.value, self.clock.now())
                host = tx.accounts.host(host_id)
            return host

    # ---- the operator's side -----------------------------------------------------------------------
    def host(self, host_id: int) -> HostRecord:
        with self.store.reading() as tx:
            return tx.accounts.host(host_id)

    def set_kyc(self, host_id: int, status: KycStatus) -> HostRecord:
        with self.store.transaction() as tx:
            # Waits for a payout of the host in progress: once this returns, none is made unverified.
            tx.accounts.lock_host(host_id)
            tx.accounts.set_host_kyc(host_id, status.value, self.clock.now())
            return tx.accounts.host(host_id)


def _own(tx: UnitOfWork, host_id: int, charger_id: int) -> ChargerView:
    view = tx.chargers.by_id(charger_id)
    if view.host_id != host_id:
        raise NotFound(f"no charger {charger_id}")  # the same answer as for one that does not exist
    return view


def _payouts(host_id: int, entries: Sequence[JournalEntry]) -> list[Payout]:
    account = host_payable(host_id)
    return [
        Payout(e.entry_id, sum(p.amount for p in e.postings if p.account == account), e.created_at)
        for e in entries
        if e.kind is EntryKind.PAYOUT
    ]
