"""A host's home buying its guests' export on the SQL store (SQLite and PostgreSQL): the host's
choice kept, the buyer a record was first written with kept by every later write, and a home sale
through the services charged to the host in the ledger."""

from __future__ import annotations

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from chargeshare.domain.ledger import EntryKind, host_payable
from chargeshare.domain.v2g import ExportBuyer, ExportRecord
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.services.test_v2g_home_buyer import Site, as_host, credits, failing


def test_the_hosts_choice_is_kept(sql_app: App, clock: ManualClock) -> None:
    site = Site(sql_app, clock)
    with sql_app.store.transaction() as tx:
        assert tx.v2g.host_buyer(site.host_id) is ExportBuyer.GRID  # no row: the grid
        tx.v2g.set_host_buyer(site.host_id, ExportBuyer.HOME, clock.now())
    with sql_app.store.transaction() as tx:
        assert tx.v2g.host_buyer(site.host_id) is ExportBuyer.HOME
        tx.v2g.set_host_buyer(site.host_id, ExportBuyer.GRID, clock.now())  # a second choice replaces it
    with sql_app.store.reading() as tx:
        assert tx.v2g.host_buyer(site.host_id) is ExportBuyer.GRID
    with pytest.raises(NotFound), sql_app.store.transaction() as tx:
        tx.v2g.set_host_buyer(9_999, ExportBuyer.HOME, clock.now())


def test_a_later_write_keeps_the_buyer_the_record_was_first_written_with(
    sql_app: App, clock: ManualClock
) -> None:
    site = Site(sql_app, clock)
    booking = sql_app.bookings.book(BookRequest(site.dee, site.charger, 1, 60, 10_000)).booking_id
    with sql_app.store.transaction() as tx:
        tx.v2g.save_record(ExportRecord(booking, 100, 100, buyer=ExportBuyer.HOME), clock.now())
    with sql_app.store.transaction() as tx:
        tx.v2g.save_record(ExportRecord(booking, 100, 200, buyer=ExportBuyer.GRID), clock.now())
    with sql_app.store.reading() as tx:
        assert tx.v2g.record(booking) == ExportRecord(booking, 100, 200, buyer=ExportBuyer.HOME)


def test_a_home_sale_is_charged_to_the_host_on_the_sql_store(sql_app: App, clock: ManualClock) -> None:
    site = Site(sql_app, clock)
    sql_app.v2g.set_buyer(as_host(site.host_id), "home")
    _, entries = site.session(20_000, between=ExportBuyer.GRID)  # the change waits for the next export
    (entry,) = credits(entries)
    assert entry.kind is EntryKind.HOME_EXPORT_CREDIT
    assert entry.postings[0].account == host_payable(site.host_id)
    assert failing(sql_app) == []
