"""The repositories' contract, held by every store: the in-memory fake, SQLite and PostgreSQL.

Service tests run on the fake; these tests are what lets them: whatever a service can observe of a
repository, the fake does as the SQL store does."""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.availability import WeeklyWindow
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import (
    BootPolicy,
    ChargerSpec,
    ChargerStatus,
    ConnectorSpec,
    ConnectorStatus,
    ConnectorType,
)
from chargeshare.domain.errors import BookingConflict, InvalidRequest, NotFound, StaleFencingToken
from chargeshare.domain.geo import BBox, Point
from chargeshare.domain.ledger import EntryKind, JournalEntry, Posting
from chargeshare.domain.search import SearchQuery
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.tariff import Tariff
from chargeshare.domain.v2g import ExportBuyer, ExportRecord, ExportTerms
from chargeshare.ocpp import V21, V201, OcppVersion
from chargeshare.services.ports import UnitOfWork
from tests.conftest import T0
from tests.integration.helpers import random_fleet, random_query, search_matches_oracle
from tests.unit.test_geo import EDGE_CENTRE, EDGE_POINT, EDGE_RADIUS_M

HOUR = timedelta(hours=1)


def spec(cp_id: str, host: int, *connectors: int, lat: float = 51.45, lon: float = -2.59) -> ChargerSpec:
    nos = connectors or (1,)
    return ChargerSpec(
        cp_id,
        host,
        Point(lat, lon),
        Tariff(30),
        tuple(ConnectorSpec(n, ConnectorType.TYPE2, 7_400) for n in nos),
        title=f"title of {cp_id}",
    )


def a_charger(tx: UnitOfWork, cp_id: str = "CP1", *connectors: int) -> tuple[int, list[int]]:
    host = tx.accounts.add_host(f"host of {cp_id}")
    charger_id = tx.chargers.add(spec(cp_id, host, *connectors))
    return charger_id, [c.connector_id for c in tx.chargers.by_id(charger_id).connectors]


def a_booking(tx: UnitOfWork, connector: int, driver: int, start_h: float = 0, hours: float = 1) -> int:
    starts = T0 + timedelta(hours=start_h)
    return tx.bookings.add(
        driver_id=driver,
        connector_id=connector,
        starts_at=starts,
        ends_at=starts + timedelta(hours=hours),
        max_energy_wh=10_000,
        price_per_kwh=30,
        hold_amount=300,
        created_at=T0,
        fencing_token=None,
    )


# ---- units of work ----------------------------------------------------------------------------------
def test_a_failed_unit_of_work_changes_nothing(app: App) -> None:
    with pytest.raises(RuntimeError), app.store.transaction() as tx:
        a_charger(tx, "GONE")
        raise RuntimeError("boom")
    with app.store.reading() as tx:
        assert not tx.chargers.all()
        with pytest.raises(NotFound):
            tx.chargers.get("GONE")


# ---- accounts ------------------------------------------------------------------------------------------
def test_accounts(app: App) -> None:
    with app.store.transaction() as tx:
        host = tx.accounts.add_host("Hannah")
        driver = tx.accounts.add_driver("Dev", "TAG1")
        account = tx.accounts.add(
            email="h@x.uk", password_hash="hash", role="host", created_at=T0, host_id=host
        )
    with app.store.transaction() as tx:
        assert tx.accounts.host(host).kyc_status == "pending"
        tx.accounts.set_host_kyc(host, "verified", T0)
        assert tx.accounts.host(host).kyc_status == "verified"
        assert tx.accounts.verified_hosts() == {host}
        assert tx.accounts.driver(driver).id_tag == "TAG1"
        assert tx.accounts.driver_by_tag("TAG1") == tx.accounts.driver(driver)
        assert tx.accounts.driver_by_tag("NOPE") is None
        got = tx.accounts.get(account)
        assert (got.email, got.role, got.host_id, got.created_at) == ("h@x.uk", "host", host, T0)
        assert tx.accounts.by_email("h@x.uk") == got
        assert tx.accounts.by_email("other@x.uk") is None
        assert tx.accounts.all() == [got]
        second = tx.accounts.add_host("Ivo")
        assert [(h.host_id, h.name, h.kyc_status) for h in tx.accounts.hosts()] == [
            (host, "Hannah", "verified"),
            (second, "Ivo", "pending"),
        ]
        with pytest.raises(InvalidRequest):
            tx.accounts.add(email="h@x.uk", password_hash="h2", role="driver", created_at=T0)
        for missing in (tx.accounts.driver, tx.accounts.host, tx.accounts.get):
            with pytest.raises(NotFound):
                missing(999_999)
        with pytest.raises(NotFound):
            tx.accounts.set_host_kyc(999_999, "verified", T0)


def test_an_id_tag_belongs_to_one_driver(app: App) -> None:
    with app.store.transaction() as tx:
        tx.accounts.add_driver("A", "SAME")
    for tag in ("SAME", "same"):  # idTags are case-insensitive
        with pytest.raises(InvalidRequest), app.store.transaction() as tx:
            tx.accounts.add_driver("B", tag)


# ---- chargers --------------------------------------------------------------------------------------------
def test_chargers_and_their_connectors(app: App) -> None:
    with app.store.transaction() as tx:
        charger, _ = a_charger(tx, "CP1", 2, 1)
        other, _ = a_charger(tx, "CP2")
        view = tx.chargers.get("CP1")
        assert view == tx.chargers.by_id(charger)
        assert view.status is ChargerStatus.REGISTERED and view.last_seen_at is None
        assert [c.connector_no for c in view.connectors] == [1, 2]
        assert all(c.status is ConnectorStatus.UNAVAILABLE for c in view.connectors)
        assert [v.charger_id for v in tx.chargers.all()] == [charger, other]
        assert [v.charge_point_id for v in tx.chargers.of_host(view.host_id)] == ["CP1"]
        assert tx.chargers.status_and_connector("CP1", 1) == (
            ChargerStatus.REGISTERED,
            view.connectors[0].connector_id,
        )
        assert tx.chargers.status_and_connector("CP1", 0) == (ChargerStatus.REGISTERED, None)
        with pytest.raises(NotFound):
            tx.chargers.status_and_connector("NOPE", 1)
        for missing in (tx.chargers.get, tx.chargers.credentials, tx.chargers.remove):
            with pytest.raises(NotFound):
                missing("NOPE")
        with pytest.raises(NotFound):
            tx.chargers.by_id(999_999)


def test_charger_status_last_seen_and_password(app: App) -> None:
    with app.store.transaction() as tx:
        a_charger(tx, "CP1")
        a_charger(tx, "CP2")
        tx.chargers.set_status("CP1", ChargerStatus.ONLINE, T0, ocpp_version=V201)
        tx.chargers.set_status("CP2", ChargerStatus.ONLINE, T0)
        tx.chargers.touch("CP2", T0 + HOUR)
        assert tx.chargers.touch_many({"CP1": T0 + HOUR, "GHOST": T0}) == ["GHOST"]
        with pytest.raises(NotFound):
            tx.chargers.touch("GHOST", T0)
        with pytest.raises(NotFound):
            tx.chargers.set_status("GHOST", ChargerStatus.ONLINE, T0)
        cp1 = tx.chargers.get("CP1")
        assert (cp1.status, cp1.ocpp_version, cp1.last_seen_at) == (ChargerStatus.ONLINE, V201, T0 + HOUR)
        assert type(cp1.ocpp_version) is OcppVersion  # read back as the enum, not a bare string
        assert tx.chargers.get("CP2").ocpp_version is None
        tx.chargers.set_status("CP2", ChargerStatus.OFFLINE, T0)
        # A stamp written behind leaves an offline charger to the frame that brings it back.
        assert tx.chargers.touch_many({"CP1": T0 + HOUR, "CP2": T0 + HOUR}) == ["CP2"]
        assert tx.chargers.get("CP2").last_seen_at == T0
        # A stamp never goes back: an older one flushed late (by a link since replaced) is left out.
        assert tx.chargers.touch_many({"CP1": T0 + HOUR / 2}) == ["CP1"]
        assert tx.chargers.get("CP1").last_seen_at == T0 + HOUR
        assert tx.chargers.touch_many({"CP1": T0 + HOUR}) == []  # the same stamp again is written
        assert [v.charge_point_id for v in tx.chargers.silent(T0 + HOUR)] == []  # seen just then
        assert [v.charge_point_id for v in tx.chargers.silent(T0 + 2 * HOUR)] == ["CP1"]  # CP2 is offline
        # The watchdog's compare-and-set: not for a charger heard since its cut-off.
        on, off, later = ChargerStatus.ONLINE, ChargerStatus.OFFLINE, T0 + 2 * HOUR
        assert not tx.chargers.set_status("CP1", off, later, expected=on, seen_before=T0 + HOUR)
        assert tx.chargers.get("CP1").status is ChargerStatus.ONLINE
        assert tx.chargers.set_status("CP1", off, later, expected=on, seen_before=later)
        assert tx.chargers.get("CP1").status is ChargerStatus.OFFLINE
        tx.chargers.set_status("CP1", ChargerStatus.ONLINE, T0 + HOUR)
        before = tx.chargers.credentials("CP1")
        assert (before.charger_id, before.password_hash) == (cp1.charger_id, None)
        tx.chargers.set_password("CP1", "pbkdf2$...")
        after = tx.chargers.credentials("CP1")
        assert after.password_hash == "pbkdf2$..."
        assert after.fingerprint != before.fingerprint  # a link opened before no longer holds
        assert tx.chargers.credentials("CP2").fingerprint != before.fingerprint  # nor another's
        assert not tx.chargers.has_bookings(cp1.charger_id)
        with pytest.raises(NotFound):
            tx.chargers.set_password("GHOST", "x")


def test_boot_policy_and_who_is_in_service(app: App) -> None:
    box = SearchQuery(bbox=BBox(-3.0, 51.0, -2.0, 52.0))
    with app.store.transaction() as tx:
        host = tx.accounts.add_host("h")
        tx.chargers.add(spec("OLD", host))
        new_id = tx.chargers.add(dataclasses.replace(spec("NEW", host), boot_policy=BootPolicy.PENDING))
        assert tx.chargers.boot_policy("OLD") is BootPolicy.ACCEPTED
        assert tx.chargers.boot_policy("NEW") is BootPolicy.PENDING
        assert tx.chargers.get("NEW").boot_policy is BootPolicy.PENDING
        assert [c.charge_point_id for c in tx.chargers.search(box)] == ["OLD"]
        with pytest.raises(NotFound):
            tx.chargers.boot_policy("GHOST")

        tx.chargers.set_boot_policy(new_id, BootPolicy.ACCEPTED)
        tx.chargers.set_status("NEW", ChargerStatus.ONLINE, T0)
        assert sorted(c.charge_point_id for c in tx.chargers.search(box)) == ["NEW", "OLD"]
        # Out of service is not merely offline: nothing that brings an offline charger back applies.
        tx.chargers.set_boot_policy(new_id, BootPolicy.REJECTED)
        new = tx.chargers.get("NEW")
        assert (new.boot_policy, new.status) == (BootPolicy.REJECTED, ChargerStatus.REGISTERED)
        assert [c.charge_point_id for c in tx.chargers.search(box)] == ["OLD"]
        with pytest.raises(NotFound):
            tx.chargers.set_boot_policy(10**6, BootPolicy.ACCEPTED)


def test_connector_statuses(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1, c2) = a_charger(tx, "CP1", 1, 2)
        assert tx.chargers.set_connector_status("CP1", 0, ConnectorStatus.AVAILABLE, T0)  # 0: all of it
        assert tx.chargers.connector_statuses([c1, c2, 999_999]) == {
            c1: ConnectorStatus.AVAILABLE,
            c2: ConnectorStatus.AVAILABLE,
        }
        assert tx.chargers.set_connector_status("CP1", 2, ConnectorStatus.CHARGING, T0)
        # Nobody, or no such connector: nothing.
        assert not tx.chargers.set_connector_status("GHOST", 1, ConnectorStatus.CHARGING, T0)
        assert not tx.chargers.set_connector_status("CP1", 7, ConnectorStatus.CHARGING, T0)
        assert tx.chargers.connector_statuses([c2]) == {c2: ConnectorStatus.CHARGING}
        assert tx.chargers.connector_statuses([]) == {}


def test_a_connector_keeps_the_status_of_its_latest_report(app: App) -> None:
    """A report older than the one a connector's status came from changes nothing; one as old (a
    repeat, or two in the same second) or newer does. For the whole charger, each connector
    compares with its own."""
    with app.store.transaction() as tx:
        _, (c1, c2) = a_charger(tx, "CP1", 1, 2)
        assert tx.chargers.set_connector_status(
            "CP1", 1, ConnectorStatus.AVAILABLE, T0 + timedelta(minutes=5)
        )
        assert not tx.chargers.set_connector_status("CP1", 1, ConnectorStatus.CHARGING, T0)
        assert tx.chargers.connector_statuses([c1]) == {c1: ConnectorStatus.AVAILABLE}
        assert tx.chargers.set_connector_status("CP1", 1, ConnectorStatus.FAULTED, T0 + timedelta(minutes=5))
        assert tx.chargers.set_connector_status("CP1", 2, ConnectorStatus.CHARGING, T0)
        # The whole charger, between the two: connector 2 takes it, connector 1 keeps its later one.
        assert tx.chargers.set_connector_status(
            "CP1", 0, ConnectorStatus.UNAVAILABLE, T0 + timedelta(minutes=1)
        )
        assert tx.chargers.connector_statuses([c1, c2]) == {
            c1: ConnectorStatus.FAULTED,
            c2: ConnectorStatus.UNAVAILABLE,
        }
        assert not tx.chargers.set_connector_status("CP1", 0, ConnectorStatus.AVAILABLE, T0)
    with app.store.reading() as tx:  # as committed
        assert tx.chargers.connector_statuses([c1, c2]) == {
            c1: ConnectorStatus.FAULTED,
            c2: ConnectorStatus.UNAVAILABLE,
        }


def test_a_connector_keeps_the_time_it_was_last_reported_available(app: App) -> None:
    at = T0
    with app.store.transaction() as tx:
        _, (c1, c2) = a_charger(tx, "CP1", 1, 2)
        assert tx.chargers.available_at(c1) is None
        tx.chargers.mark_available(c1, at)
        tx.chargers.mark_available(c1, at - timedelta(hours=1))  # the latest report stands, as sent
        assert (tx.chargers.available_at(c1), tx.chargers.available_at(c2)) == (at - timedelta(hours=1), None)
        assert tx.chargers.available_at(999_999) is None


def test_a_free_report_that_is_no_status_report_gives_way_to_a_later_status(app: App) -> None:
    """A 2.0.1 departure: noted free unless the connector's status came from a later report, and
    the status and its time left as they are either way."""
    with app.store.transaction() as tx:
        _, (c1, c2) = a_charger(tx, "CP1", 1, 2)
        late = T0 + timedelta(minutes=5)
        assert tx.chargers.mark_available(c2, T0, unless_reported_after=T0)  # no report yet
        assert tx.chargers.set_connector_status("CP1", 1, ConnectorStatus.CHARGING, late)
        assert not tx.chargers.mark_available(c1, T0, unless_reported_after=T0)
        assert tx.chargers.available_at(c1) is None
        assert tx.chargers.mark_available(c1, late, unless_reported_after=late)
        assert tx.chargers.available_at(c1) == late
        # The status stays the report's, and so does its place: a report as old still stands.
        assert tx.chargers.set_connector_status("CP1", 1, ConnectorStatus.FAULTED, late)
        assert tx.chargers.connector_statuses([c1, c2]) == {
            c1: ConnectorStatus.FAULTED,
            c2: ConnectorStatus.UNAVAILABLE,
        }
        assert not tx.chargers.mark_available(999_999, T0, unless_reported_after=T0)


def test_what_hosts_edit(app: App) -> None:
    with app.store.transaction() as tx:
        charger, _ = a_charger(tx, "CP1")
        tx.chargers.update(charger, title="Driveway", price_per_kwh=45)
        tx.chargers.update(charger)  # nothing to change
        view = tx.chargers.by_id(charger)
        assert (view.title, view.price_per_kwh) == ("Driveway", 45)
        with pytest.raises(NotFound):
            tx.chargers.update(999_999, title="x")
        assert tx.chargers.access_notes(charger) == ""
        tx.chargers.set_access_notes(charger, "gate 1234")
        assert tx.chargers.access_notes(charger) == "gate 1234"
        tx.chargers.set_access_notes(charger, "")
        assert tx.chargers.access_notes(charger) == ""
        windows = [WeeklyWindow(0, 60, 600), WeeklyWindow(3, 0, 1440)]
        tx.chargers.set_availability(charger, windows)
        assert tx.chargers.availability([charger, 999_999]) == {charger: windows}
        tx.chargers.set_availability(charger, [])
        assert tx.chargers.availability([charger]) == {}
        tx.chargers.add_connector(charger, 2, ConnectorType.CCS, 50_000)
        with pytest.raises(InvalidRequest):
            tx.chargers.add_connector(charger, 2, ConnectorType.CCS, 50_000)
        tx.chargers.update_connector(charger, 2, max_power_w=22_000)
        with pytest.raises(NotFound):
            tx.chargers.update_connector(charger, 9, max_power_w=1)
        second = tx.chargers.by_id(charger).connectors[1]
        assert (second.type, second.max_power_w) == (ConnectorType.CCS, 22_000)
        tx.chargers.remove_connector(charger, 2)
        with pytest.raises(InvalidRequest):  # the last one
            tx.chargers.remove_connector(charger, 1)
        with pytest.raises(NotFound):
            tx.chargers.remove_connector(charger, 2)


def test_a_booked_charger_cannot_be_removed(app: App) -> None:
    with app.store.transaction() as tx:
        charger, (_, c2) = a_charger(tx, "CP1", 1, 2)
        a_charger(tx, "FREE")
        driver = tx.accounts.add_driver("D", "T")
        a_booking(tx, c2, driver)
        with pytest.raises(InvalidRequest):
            tx.chargers.remove_connector(charger, 2)
        with pytest.raises(InvalidRequest):
            tx.chargers.remove("CP1")
        tx.chargers.remove("FREE")
        with pytest.raises(NotFound):
            tx.chargers.get("FREE")
    with pytest.raises(Exception), app.store.transaction() as tx:  # noqa: B017
        a_charger(tx, "CP1")  # a charge point id names one charger


# ---- bookings --------------------------------------------------------------------------------------------
def test_live_bookings_never_overlap_on_a_connector(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1, c2) = a_charger(tx, "CP1", 1, 2)
        driver = tx.accounts.add_driver("D", "T")
        first = a_booking(tx, c1, driver, 0, 1)
        assert tx.bookings.get(first).status is BookingStatus.REQUESTED
        a_booking(tx, c1, driver, 1, 1)  # back to back: periods are half-open
        a_booking(tx, c2, driver, 0, 1)  # another connector
    with pytest.raises(BookingConflict), app.store.transaction() as tx:
        a_booking(tx, c1, driver, 0.5, 1)
    with app.store.transaction() as tx:
        tx.bookings.update(first, BookingStatus.FAILED)
        a_booking(tx, c1, driver, 0.5, 0.5)  # a failed booking holds nothing


def test_a_request_key_names_one_booking_per_driver(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx)
        d1, d2 = tx.accounts.add_driver("D1", "T1"), tx.accounts.add_driver("D2", "T2")
        b1, b2 = a_booking(tx, c1, d1, 0), a_booking(tx, c1, d2, 1)
        assert tx.bookings.request_seen(d1, "k") is None
        assert tx.bookings.remember_request(d1, "k", "f1", b1, T0)
        assert not tx.bookings.remember_request(d1, "k", "f2", b2, T0)  # taken: nothing written
        assert tx.bookings.remember_request(d2, "k", "f2", b2, T0)  # another driver's own key
    with app.store.reading() as tx:
        assert tx.bookings.request_seen(d1, "k") == ("f1", b1)
        assert tx.bookings.request_seen(d2, "k") == ("f2", b2)
    with pytest.raises(RuntimeError), app.store.transaction() as tx:  # undone with its unit of work
        tx.bookings.remember_request(d1, "rolled-back", "f3", b1, T0)
        raise RuntimeError("the booking's unit of work fails after the key is written")
    with app.store.reading() as tx:
        assert tx.bookings.request_seen(d1, "rolled-back") is None


def test_a_stale_fencing_token_is_refused(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx)
        driver = tx.accounts.add_driver("D", "T")

    def book(token: int, start_h: float) -> int:
        with app.store.transaction() as tx:
            return tx.bookings.add(
                driver_id=driver,
                connector_id=c1,
                starts_at=T0 + timedelta(hours=start_h),
                ends_at=T0 + timedelta(hours=start_h + 1),
                max_energy_wh=1,
                price_per_kwh=1,
                hold_amount=1,
                created_at=T0,
                fencing_token=token,
            )

    book(5, 0)
    with pytest.raises(StaleFencingToken):
        book(5, 2)
    with pytest.raises(StaleFencingToken):
        book(4, 2)
    book(6, 2)


def test_booking_reads_and_updates(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx, "CP1")
        _, (other,) = a_charger(tx, "CP2")
        d1, d2 = tx.accounts.add_driver("D1", "T1"), tx.accounts.add_driver("D2", "T2")
        b1 = a_booking(tx, c1, d1, 0)
        b2 = a_booking(tx, c1, d2, 2)
        b3 = a_booking(tx, other, d1, 4)
        host = tx.chargers.get("CP1").host_id
        assert [b.booking_id for b in tx.bookings.all()] == [b1, b2, b3]
        assert [b.booking_id for b in tx.bookings.of(driver_id=d1)] == [b3, b1]  # newest first
        assert [b.booking_id for b in tx.bookings.of(host_id=host)] == [b2, b1]
        with pytest.raises(ValueError):
            tx.bookings.of()
        cp1, cp2 = tx.chargers.get("CP1").charger_id, tx.chargers.get("CP2").charger_id
        requested = {BookingStatus.REQUESTED}
        assert [b.booking_id for b in tx.bookings.on_charger(cp1, requested)] == [b2, b1]  # newest first
        assert [b.booking_id for b in tx.bookings.on_charger(cp2, requested)] == [b3]
        assert tx.bookings.on_charger(cp1, {BookingStatus.ACTIVE}) == []
        got = tx.bookings.get(b1)
        assert (got.driver_id, got.connector_id, got.host_id, got.hold_amount) == (d1, c1, host, 300)
        assert (got.fee, got.cancelled_by, got.reservation, got.payment_ref) == (0, None, "none", None)
        tx.bookings.update(b1, BookingStatus.CONFIRMED, payment_ref="ref-1")
        tx.bookings.update(b2, BookingStatus.CONFIRMED, payment_ref="ref-2")
        tx.bookings.update(b1, BookingStatus.CANCELLED, fee=50, cancelled_by="driver")  # the rest kept
        got = tx.bookings.get(b1)
        assert (got.status, got.payment_ref, got.fee, got.cancelled_by) == (
            BookingStatus.CANCELLED,
            "ref-1",
            50,
            "driver",
        )
        tx.bookings.update(b2, BookingStatus.CONFIRMED, ends_at=T0 + timedelta(hours=2, minutes=30))
        assert tx.bookings.get(b2).ends_at == T0 + timedelta(hours=2, minutes=30)
        assert [b.booking_id for b in tx.bookings.all(BookingStatus.CONFIRMED)] == [b2]
        with pytest.raises(NotFound):
            tx.bookings.get(999_999)
        with pytest.raises(NotFound):
            tx.bookings.update(999_999, BookingStatus.FAILED)


def test_the_sweeps_lookups_and_the_reservation_state(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx)
        driver = tx.accounts.add_driver("D", "T")
        soon, later = a_booking(tx, c1, driver, 0), a_booking(tx, c1, driver, 5)
        for b in (soon, later):
            tx.bookings.update(b, BookingStatus.CONFIRMED)
        by = T0 + HOUR
        assert [b.booking_id for b in tx.bookings.starting_by(BookingStatus.CONFIRMED, by)] == [soon]
        assert [b.booking_id for b in tx.bookings.starting_by(BookingStatus.CONFIRMED, T0)] == [
            soon
        ]  # at or before
        assert tx.bookings.starting_by(BookingStatus.REQUESTED, by) == []
        assert tx.bookings.set_reservation(soon, "sent", expected="none")
        assert not tx.bookings.set_reservation(soon, "sent", expected="none")  # compare-and-set
        assert tx.bookings.starting_by(BookingStatus.CONFIRMED, by, reservation="none") == []
        assert [
            b.booking_id for b in tx.bookings.starting_by(BookingStatus.CONFIRMED, by, reservation="sent")
        ] == [soon]
        charger_id = tx.bookings.get(soon).charger_id
        assert tx.chargers.has_bookings(charger_id)
        # What a charger is asked again when it connects: its confirmed bookings still "sent".
        assert [b.booking_id for b in tx.bookings.reservations_on(charger_id, "sent")] == [soon]
        assert tx.bookings.reservations_on(charger_id + 1, "sent") == []
        assert tx.bookings.set_reservation(soon, "accepted")
        assert tx.bookings.get(soon).reservation == "accepted"
        assert not tx.bookings.get(soon).connector_held
        tx.bookings.mark_connector_held(soon)
        assert tx.bookings.get(soon).connector_held
        assert not tx.bookings.get(later).connector_held
        assert tx.bookings.reservations_on(charger_id, "sent") == []
        assert not tx.bookings.set_reservation(999_999, "sent")
        # The start a charger asks about: the driver's earliest confirmed booking not yet over.
        found = tx.bookings.for_start(c1, driver, T0 + timedelta(minutes=30))
        assert found is not None and found.booking_id == soon
        found = tx.bookings.for_start(c1, driver, T0 + HOUR)
        assert found is not None and found.booking_id == later
        assert tx.bookings.for_start(c1, 999_999, T0) is None
        assert tx.bookings.set_reservation(later, "sent")
        tx.bookings.update(later, BookingStatus.CANCELLED)
        # A late replayed start asks for the driver's booking expired as a no-show, in that status.
        assert tx.bookings.for_start(c1, driver, T0 + HOUR, BookingStatus.EXPIRED) is None
        tx.bookings.update(soon, BookingStatus.EXPIRED)
        found = tx.bookings.for_start(c1, driver, T0 + timedelta(minutes=30), BookingStatus.EXPIRED)
        assert found is not None and found.booking_id == soon
        assert tx.bookings.for_start(c1, driver, T0 + timedelta(minutes=30)) is None
        tx.bookings.update(soon, BookingStatus.CONFIRMED)
        assert tx.bookings.reservations_on(charger_id, "sent") == []  # confirmed ones only


def test_the_reservations_a_charger_is_owed_a_call_on(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx, "CP1")
        _, (c2,) = a_charger(tx, "CP2")
        driver = tx.accounts.add_driver("D", "T")
        rows = {
            # (status, reservation): owed?
            (BookingStatus.CONFIRMED, "none"): False,
            (BookingStatus.CONFIRMED, "sent"): True,  # ReserveNow unanswered
            (BookingStatus.CONFIRMED, "accepted"): False,  # held, as it should be
            (BookingStatus.CONFIRMED, "expired"): False,
            (BookingStatus.CANCELLED, "sent"): True,  # the charger may hold it: cancel
            (BookingStatus.CANCELLED, "accepted"): True,
            (BookingStatus.CANCELLED, "none"): False,
            (BookingStatus.EXPIRED, "accepted"): True,
            (BookingStatus.COMPLETED, "none"): False,
            (BookingStatus.FAILED, "none"): False,
        }
        owed = []
        for i, ((status, reservation), is_owed) in enumerate(rows.items()):
            connector = (c1, c2)[i % 2]
            booking = a_booking(tx, connector, driver, start_h=2 * i)
            tx.bookings.update(booking, status)
            tx.bookings.set_reservation(booking, reservation)
            if is_owed:
                owed.append((booking, ("CP1", "CP2")[i % 2]))
        assert list(tx.bookings.reservations_owed()) == owed


def test_the_stops_a_charger_is_owed(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx, "CP1")
        _, (c2,) = a_charger(tx, "CP2")
        driver = tx.accounts.add_driver("D", "T")
        sessions = []
        for i, connector in enumerate((c1, c2, c1)):
            booking = a_booking(tx, connector, driver, start_h=2 * i)  # 10,000 Wh each
            sessions.append(
                tx.sessions.add(
                    booking_id=booking,
                    connector_id=connector,
                    id_tag="T",
                    started_at=T0 + timedelta(hours=2 * i),
                    meter_start_wh=500,
                )
            )
        under, at_limit, stopped = sessions
        assert tx.sessions.advance_meter(under, 10_499, "CP1", T0) is not None
        assert tx.sessions.advance_meter(at_limit, 10_500, "CP2", T0) is not None
        assert tx.sessions.advance_meter(stopped, 20_000, "CP1", T0) is not None
        assert tx.sessions.stop(
            stopped, stopped_at=T0, meter_stop_wh=20_000, billed_wh=19_500, cost=1, idle_fee=0
        )
        assert list(tx.sessions.stops_owed()) == [(at_limit, "CP2")]


def test_a_hosts_export_buyer_and_the_buyer_a_record_was_first_written_with(app: App) -> None:
    """No choice is the grid; a choice replaces the last; an unknown host is NotFound. A record
    keeps its first buyer through every later write, so the export has one buyer."""
    with app.store.transaction() as tx:
        charger, (c1,) = a_charger(tx, "CP1")
        host = tx.chargers.by_id(charger).host_id
        booking = a_booking(tx, c1, tx.accounts.add_driver("D", "T"))
        assert tx.v2g.host_buyer(host) is ExportBuyer.GRID
        tx.v2g.set_host_buyer(host, ExportBuyer.HOME, T0)
        assert tx.v2g.host_buyer(host) is ExportBuyer.HOME
        with pytest.raises(NotFound):
            tx.v2g.set_host_buyer(host + 1_000, ExportBuyer.HOME, T0)
        tx.v2g.save_record(ExportRecord(booking, 100, 100, buyer=ExportBuyer.HOME), T0)
        tx.v2g.save_record(ExportRecord(booking, 100, 250, buyer=ExportBuyer.GRID), T0)
        tx.v2g.set_host_buyer(host, ExportBuyer.GRID, T0)
    with app.store.reading() as tx:
        assert tx.v2g.record(booking) == ExportRecord(booking, 100, 250, buyer=ExportBuyer.HOME)
        assert tx.v2g.host_buyer(host) is ExportBuyer.GRID


def test_the_v2g_exports_a_charger_is_owed_until_it_takes_them(app: App) -> None:
    """Open sessions on bookings with export terms at a 2.1 charger, until the session's charger
    took the export; a later session of the same booking is owed afresh, a stopped one never, nor
    one left open behind a newer open session on its connector."""
    with app.store.transaction() as tx:
        _, (c1, c3) = a_charger(tx, "CP1", 1, 2)
        _, (c2,) = a_charger(tx, "CP2")
        tx.chargers.set_status("CP1", ChargerStatus.ONLINE, T0, ocpp_version=V21)
        tx.chargers.set_status("CP2", ChargerStatus.ONLINE, T0, ocpp_version=V201)
        driver = tx.accounts.add_driver("D", "T")
        sessions, bookings = [], []
        for i, connector in enumerate((c1, c3, c2, c1)):
            booking = a_booking(tx, connector, driver, start_h=2 * i)
            bookings.append(booking)
            if i != 1:  # the second has no terms
                tx.v2g.set_terms(ExportTerms(booking, 20, 30, T0))
            sessions.append(
                tx.sessions.add(
                    booking_id=booking,
                    connector_id=connector,
                    id_tag="T",
                    started_at=T0 + timedelta(hours=2 * i),
                    meter_start_wh=500,
                )
            )
        owed, _no_terms, _on_201, stopped = sessions
        assert tx.sessions.stop(stopped, stopped_at=T0, meter_stop_wh=600, billed_wh=100, cost=1, idle_fee=0)
        assert list(tx.v2g.exports_owed()) == [(owed, "CP1")]
        tx.v2g.export_taken(bookings[0], owed)
        assert list(tx.v2g.exports_owed()) == []
        tx.v2g.set_terms(ExportTerms(bookings[0], 25, 30, T0))  # changed terms keep what was taken
        assert list(tx.v2g.exports_owed()) == []
        tx.v2g.export_taken(bookings[0], owed + 1_000)  # another session of it took one
        assert list(tx.v2g.exports_owed()) == [(owed, "CP1")]
        later = a_booking(tx, c1, driver, start_h=8)
        tx.sessions.add(booking_id=later, connector_id=c1, id_tag="T", started_at=T0, meter_start_wh=900)
        assert list(tx.v2g.exports_owed()) == []  # left open behind a newer one: never sent again


def test_the_periods_live_bookings_hold_on_a_connector(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx, "CP1")
        _, (c2,) = a_charger(tx, "CP2")
        driver = tx.accounts.add_driver("D", "T")
        over = a_booking(tx, c1, driver, 0)
        cancelled = a_booking(tx, c1, driver, 1)
        later = a_booking(tx, c1, driver, 3, 0.5)
        a_booking(tx, c2, driver, 1)  # another connector's
        tx.bookings.update(over, BookingStatus.COMPLETED)  # completed still holds its time
        tx.bookings.update(cancelled, BookingStatus.CANCELLED)
        assert tx.bookings.held_periods(c1, T0) == [
            (T0, T0 + HOUR),
            (T0 + 3 * HOUR, T0 + 3.5 * HOUR),
        ]
        assert tx.bookings.held_periods(c1, T0 + HOUR) == [(T0 + 3 * HOUR, T0 + 3.5 * HOUR)]  # ended then
        assert tx.bookings.held_periods(c1, T0 + 4 * HOUR) == []
        assert later


# ---- sessions --------------------------------------------------------------------------------------------
def test_a_session_from_start_to_stop(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx, "CP1")
        a_charger(tx, "CP2")
        driver = tx.accounts.add_driver("D", "T")
        booking = a_booking(tx, c1, driver)
        session = tx.sessions.add(
            booking_id=booking, connector_id=c1, id_tag="T", started_at=T0, meter_start_wh=1_000
        )
        got = tx.sessions.get(session)
        assert got is not None and (got.status, got.meter_start_wh, got.meter_last_wh) == (
            SessionStatus.CHARGING,
            1_000,
            1_000,
        )
        assert tx.sessions.by_start_key(c1, "T", 1_000, T0) == got
        assert tx.sessions.by_start_key(c1, "T", 1_001, T0) is None
        assert tx.sessions.for_booking(booking) == got
        assert tx.sessions.open_on(c1) == got
        # A status report's read: the charger's status, the connector and its open session at once.
        status = tx.chargers.status_and_connector("CP1", 1)[0]
        assert tx.sessions.on_connector("CP1", 1) == (status, c1, got)
        assert tx.sessions.on_connector("CP2", 1)[2] is None  # its connector has no session
        assert tx.sessions.on_connector("CP1", 0) == (status, None, None)
        assert tx.sessions.on_connector("CP1", 7) == (status, None, None)
        with pytest.raises(NotFound):
            tx.sessions.on_connector("NOPE", 1)
        assert tx.sessions.charger_of(session) == "CP1"
        assert tx.sessions.charger_of(999_999) is None
        advance = tx.sessions.advance_meter(session, 3_000, "CP1", T0)
        assert advance is not None
        assert (advance.booking_id, advance.meter_start_wh, advance.meter_last_wh, advance.max_energy_wh) == (
            booking,
            1_000,
            3_000,
            10_000,
        )
        advance = tx.sessions.advance_meter(session, 2_000, "CP1", T0)  # an old reading: the register stays
        assert advance is not None and advance.meter_last_wh == 3_000
        assert tx.sessions.advance_meter(session, 9_000, "CP2", T0) is None  # another charger's session
        assert tx.sessions.advance_meter(999_999, 9_000, "CP1", T0) is None
        tx.sessions.mark_idle(session, T0 + HOUR)
        tx.sessions.mark_idle(session, T0 + 2 * HOUR)  # idle from the first report
        idle = tx.sessions.get(session)
        assert idle is not None and idle.idle_since == T0 + HOUR
        tx.sessions.mark_idle(session, None)
        idle = tx.sessions.get(session)
        assert idle is not None and idle.idle_since is None
        assert tx.sessions.freed_before(T0 + 9 * HOUR) == []
        tx.sessions.mark_freed(session, T0 + HOUR)
        tx.sessions.mark_freed(session, T0 + 2 * HOUR)  # freed from the first report
        assert [s.session_id for s in tx.sessions.freed_before(T0 + HOUR)] == []  # strictly before
        freed = tx.sessions.freed_before(T0 + 2 * HOUR)
        assert [(s.session_id, s.freed_at) for s in freed] == [(session, T0 + HOUR)]
        # A reading after the free report: a replay still on its way, freed from the reading now.
        assert tx.sessions.advance_meter(session, 3_100, "CP1", T0 + 3 * HOUR) is not None
        freed = tx.sessions.freed_before(T0 + 9 * HOUR)
        assert [(s.session_id, s.freed_at) for s in freed] == [(session, T0 + 3 * HOUR)]
        tx.sessions.mark_freed(session, None)  # in use again
        assert tx.sessions.freed_before(T0 + 9 * HOUR) == []
        assert tx.sessions.advance_meter(session, 3_200, "CP1", T0 + 4 * HOUR) is not None
        assert tx.sessions.freed_before(T0 + 9 * HOUR) == []  # a reading never frees a connector
        tx.sessions.mark_freed(session, T0 + HOUR)
        assert tx.sessions.stop(
            session, stopped_at=T0 + HOUR, meter_stop_wh=2_500, billed_wh=1_500, cost=45, idle_fee=5
        )
        # Stopped once: a second stop (a racing one, a late one) is refused and changes nothing.
        assert not tx.sessions.stop(
            session, stopped_at=T0 + 2 * HOUR, meter_stop_wh=4_000, billed_wh=3_000, cost=90, idle_fee=0
        )
        assert not tx.sessions.stop(
            999_999, stopped_at=T0 + HOUR, meter_stop_wh=1, billed_wh=1, cost=1, idle_fee=0
        )
        stopped = tx.sessions.get(session)
        assert stopped is not None
        assert (stopped.status, stopped.meter_stop_wh, stopped.meter_last_wh, stopped.billed_wh) == (
            SessionStatus.STOPPED,
            2_500,
            3_200,
            1_500,
        )
        assert (stopped.cost, stopped.idle_fee, stopped.stopped_at) == (45, 5, T0 + HOUR)
        assert not stopped.unmetered and tx.sessions.unmetered() == []
        assert not tx.sessions.awaits_first_reading(session)  # a 1.6 session starts with its reading
        assert tx.sessions.advance_meter(session, 9_000, "CP1", T0) is None  # finished: nothing moves
        assert tx.sessions.freed_before(T0 + 9 * HOUR) == []  # a stopped session is not lost
        assert tx.sessions.open_on(c1) is None
        assert tx.sessions.on_connector("CP1", 1) == (status, c1, None)  # stopped: none open
        assert [s.session_id for s in tx.sessions.all()] == [session]


def test_ocpp_201_transaction_ids(app: App) -> None:
    with app.store.transaction() as tx:
        charger, (c1,) = a_charger(tx)
        driver = tx.accounts.add_driver("D", "T")
        session = tx.sessions.add(
            booking_id=a_booking(tx, c1, driver), connector_id=c1, id_tag="T", started_at=T0, meter_start_wh=0
        )
        tx.sessions.link_charger_transaction(session, charger, "TX-1", meter_start_pending=True)
        assert tx.sessions.awaits_first_reading(session)
        assert tx.sessions.charger_transaction_id(session) == "TX-1"
        assert tx.sessions.by_charger_transaction(charger, "TX-1") == tx.sessions.get(session)
        assert tx.sessions.by_charger_transaction(charger, "TX-2") is None
        # Another charger (or an unregistered one) naming it finds it; this charger does not.
        assert tx.sessions.running_elsewhere("TX-1", charger + 1_000) == session
        assert tx.sessions.running_elsewhere("TX-1", None) == session
        assert tx.sessions.running_elsewhere("TX-1", charger) is None
        assert tx.sessions.running_elsewhere("TX-2", None) is None
        assert tx.sessions.settle_meter_start(session, 700)
        assert not tx.sessions.settle_meter_start(session, 900)  # only the first reading
        assert not tx.sessions.awaits_first_reading(session)
        started = tx.sessions.get(session)
        assert started is not None and (started.meter_start_wh, started.meter_last_wh) == (700, 700)
        assert tx.sessions.charger_seq(session) is None
        assert tx.sessions.advance_charger_seq(session, 3)
        assert not tx.sessions.advance_charger_seq(session, 3)
        assert not tx.sessions.advance_charger_seq(session, 2)
        assert tx.sessions.charger_seq(session) == 3
        assert tx.sessions.advance_charger_seq(session, 4)
        assert tx.sessions.charger_seq(session) == 4
        other = tx.sessions.add(
            booking_id=a_booking(tx, c1, driver, 2),
            connector_id=c1,
            id_tag="T",
            started_at=T0 + HOUR,
            meter_start_wh=0,
        )
        tx.sessions.stop(session, stopped_at=T0 + HOUR, meter_stop_wh=900, billed_wh=200, cost=6, idle_fee=0)
        assert tx.sessions.running_elsewhere("TX-1", None) is None  # only a running one counts
        # Stopped before any reading came: a late one does not become its meter start.
        unread = tx.sessions.add(
            booking_id=a_booking(tx, c1, driver, 4),
            connector_id=c1,
            id_tag="T",
            started_at=T0 + 4 * HOUR,
            meter_start_wh=0,
        )
        tx.sessions.link_charger_transaction(unread, charger, "TX-3", meter_start_pending=True)
        tx.sessions.stop(unread, stopped_at=T0 + 5 * HOUR, meter_stop_wh=0, billed_wh=0, cost=0, idle_fee=0)
        assert not tx.sessions.settle_meter_start(unread, 500)
        late = tx.sessions.get(unread)
        assert late is not None and (late.meter_start_wh, late.meter_stop_wh, late.billed_wh) == (0, 0, 0)
        tx.sessions.stop(other, stopped_at=T0 + HOUR, meter_stop_wh=0, billed_wh=0, cost=0, unmetered=True)
        flagged = tx.sessions.get(other)
        assert flagged is not None and flagged.unmetered
        assert tx.sessions.unmetered() == [flagged]
    with pytest.raises(Exception), app.store.transaction() as tx:  # noqa: B017
        tx.sessions.link_charger_transaction(other, charger, "TX-1")


# ---- the journal, the outbox, notices ----------------------------------------------------------------
def entry(
    entry_id: str,
    booking: int | None,
    amount: int,
    *,
    kind: EntryKind = EntryKind.HOLD,
    pending: str | None = None,
    at_h: float = 0,
) -> JournalEntry:
    postings = (Posting("driver:1:card", -amount), Posting("platform:holds", amount))
    return JournalEntry(entry_id, kind, postings, T0 + timedelta(hours=at_h), booking, pending)


def test_the_journal(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx)
        driver = tx.accounts.add_driver("D", "T")
        b1, b2 = a_booking(tx, c1, driver), a_booking(tx, c1, driver, 3)
        tx.ledger.add([entry("b", b1, 300, at_h=1), entry("a", b1, 200, at_h=1), entry("c", b2, 100)])
        payout = JournalEntry(
            "p", EntryKind.PAYOUT, (Posting("host:1:payable", 50), Posting("bank", -50)), T0, None
        )
        tx.ledger.add([payout, entry("v", b1, 0, kind=EntryKind.VOID, pending="a", at_h=2)])
    with app.store.reading() as tx:
        # By time, then as written.
        assert [e.entry_id for e in tx.ledger.entries()] == ["c", "p", "b", "a", "v"]
        assert [e.entry_id for e in tx.ledger.entries(b1)] == ["b", "a", "v"]
        assert [e.entry_id for e in tx.ledger.entries(account="bank")] == ["p"]
        assert [e.entry_id for e in tx.ledger.entries(b1, account="platform:holds")] == ["b", "a", "v"]
        a = tx.ledger.entries(b1)[1]
        assert (a.kind, a.postings, a.booking_id, a.pending_id) == (
            EntryKind.HOLD,
            (Posting("driver:1:card", -200), Posting("platform:holds", 200)),
            b1,
            None,
        )
        assert tx.ledger.entries(b1)[2].pending_id == "a"
        assert tx.ledger.posting_sums() == {"a": 0, "b": 0, "c": 0, "p": 0, "v": 0}
    with app.store.transaction() as tx:  # a step done again writes the same entry: skipped
        tx.ledger.add([entry("a", b1, 200)])
    with app.store.reading() as tx:
        assert tx.ledger.posting_sums()["a"] == 0 and len(tx.ledger.entries(b1)) == 3
        assert len(tx.ledger.entries(b1)[0].postings) == 2
    with pytest.raises(Exception), app.store.transaction() as tx:  # noqa: B017 - a hold is resolved once
        tx.ledger.add([entry("v2", b1, 0, kind=EntryKind.VOID, pending="a")])


def test_entries_written_at_one_instant_come_back_in_the_order_written(app: App) -> None:
    """A payout and a home's purchase lock their host's row before reading the clock, so at one
    instant the order written is the order they happened: every read keeps it (ids sort otherwise)."""
    host = "host:1:payable"
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx)
        b1 = a_booking(tx, c1, tx.accounts.add_driver("D", "T"))
        paid = JournalEntry("z-payout", EntryKind.PAYOUT, (Posting(host, 50), Posting("bank", -50)), T0, None)
        tx.ledger.add([entry("y", b1, 10), paid])
    with app.store.transaction() as tx:  # a later transaction at the same instant
        bought = JournalEntry(
            "a-bought",
            EntryKind.HOME_EXPORT_CREDIT,
            (Posting(host, 20), Posting("driver:1:credit", -20)),
            T0,
            b1,
        )
        tx.ledger.add([bought, entry("b", b1, 30)])
    with app.store.reading() as tx:
        assert [e.entry_id for e in tx.ledger.entries()] == ["y", "z-payout", "a-bought", "b"]
        assert [e.entry_id for e in tx.ledger.entries(account=host)] == ["z-payout", "a-bought"]
        assert [e.entry_id for e in tx.ledger.entries(b1)] == ["y", "a-bought", "b"]
        assert [e.entry_id for e in tx.ledger.entries(b1, account=host)] == ["a-bought"]
        assert [e.entry_id for e in tx.ledger.entries_of([b1])[b1]] == ["y", "a-bought", "b"]


def test_the_payments_outbox(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx)
        driver = tx.accounts.add_driver("D", "T")
        b1, b2 = a_booking(tx, c1, driver), a_booking(tx, c1, driver, 3)
        assert tx.outbox.enqueue(b1, "capture", 120, "k1", T0 + HOUR)
        assert not tx.outbox.enqueue(b1, "capture", 999, "k1", T0)  # one step per key
        assert tx.outbox.enqueue(b2, "release", 0, "k2", T0)
        assert tx.outbox.enqueue(b1, "fee", 50, "k3", T0 + 2 * HOUR)
        k1 = tx.outbox.get("k1")
        assert k1 is not None and (k1.booking_id, k1.step, k1.amount, k1.status, k1.attempts) == (
            b1,
            "capture",
            120,
            "pending",
            0,
        )
        assert tx.outbox.get("nope") is None
        assert [i.idempotency_key for i in tx.outbox.due(T0 + HOUR, 10)] == ["k2", "k1"]
        assert [i.idempotency_key for i in tx.outbox.due(T0 + HOUR, 1)] == ["k2"]
        assert [i.idempotency_key for i in tx.outbox.pending_of(b1)] == ["k1", "k3"]

        def finished(expected: str, error: str | None, tried: int = 0) -> bool:
            return tx.outbox.update(
                k1.item_id,
                expected=expected,
                expected_attempts=tried,
                now=T0,
                status="done",
                attempts=1,
                next_attempt_at=T0,
                last_error=error,
                done_at=T0,
            )

        assert finished("pending", None)
        assert not finished("pending", "y")  # only from the state read: a finished step is left alone
        assert not finished("done", "z", tried=0)  # nor one tried since it was read
        assert finished("done", "x" * 600, tried=1)
        done = tx.outbox.get("k1")
        assert done is not None and (done.status, done.done_at, len(done.last_error or "")) == (
            "done",
            T0,
            500,
        )
        assert [i.idempotency_key for i in tx.outbox.pending_of(b1)] == ["k3"]
        assert [i.idempotency_key for i in tx.outbox.all("done")] == ["k1"]
        assert [i.idempotency_key for i in tx.outbox.all()] == ["k1", "k2", "k3"]


def test_a_payment_step_counts_the_declines_of_its_fresh_authorisations(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx)
        b1 = a_booking(tx, c1, tx.accounts.add_driver("D", "T"))
        tx.outbox.enqueue(b1, "capture", 120, "k1", T0)
        item = tx.outbox.get("k1")
        assert item is not None and item.declines == 0

        def attempt(tries: int, *, declined: bool) -> int:
            (claimed,) = tx.outbox.claim_of(b1, T0, f"w{tries}", T0 + HOUR)
            assert tx.outbox.finish(
                claimed.item_id,
                f"w{tries}",
                status="pending",
                attempts=tries,
                next_attempt_at=T0,
                last_error="declined" if declined else "unreachable",
                declined=declined,
            )
            again = tx.outbox.get("k1")
            assert again is not None and again.attempts == tries
            return again.declines

        assert [
            attempt(1, declined=True),
            attempt(2, declined=False),  # an outage is no decline
            attempt(3, declined=True),
        ] == [1, 1, 2]


def test_notifications_and_security_events(app: App) -> None:
    with app.store.transaction() as tx:
        h1, h2 = tx.accounts.add_host("A"), tx.accounts.add_host("B")
        tx.notifications.add(h1, "charger_offline", "subject", "body", T0)
        tx.notifications.add(h2, "charger_offline", "s2", "b2", T0 + HOUR)
        (n,) = tx.notifications.all(h1)
        assert (n["host_id"], n["kind"], n["subject"], n["body"], n["created_at"], n["delivered_at"]) == (
            h1,
            "charger_offline",
            "subject",
            "body",
            T0,
            None,
        )
        assert [x["subject"] for x in tx.notifications.all()] == ["subject", "s2"]
        tx.security.record("ROGUE", "ForeignTransaction", "x" * 600, T0)
        tx.security.record("OTHER", "ForeignTransaction", "detail", T0)
        (e,) = tx.security.all("ROGUE")
        assert (e.charge_point_id, e.kind, len(e.detail), e.at) == ("ROGUE", "ForeignTransaction", 500, T0)
        assert [x.charge_point_id for x in tx.security.all()] == ["ROGUE", "OTHER"]
        assert e.source == "backend"  # what we saw it do, unless said otherwise
        tx.security.record("ROGUE", "TamperDetectionActivated", "lid opened", T0 + HOUR, source="charger")
        told = tx.security.all("ROGUE")[-1]
        assert (told.kind, told.detail, told.at, told.source) == (
            "TamperDetectionActivated",
            "lid opened",
            T0 + HOUR,
            "charger",
        )


def test_what_chargers_report_about_themselves(app: App) -> None:
    body = {"status": "Installed", "requestId": 7, "nested": [{"name": "Zähler", "value": None}]}
    with app.store.transaction() as tx:
        c1, _ = a_charger(tx, "CP1")
        c2, _ = a_charger(tx, "CP2")
        first = tx.reports.add(c1, "FirmwareStatusNotification", "Installed", body, received_at=T0)
        tx.reports.add(c1, "LogStatusNotification", "x" * 600, {"status": "Uploaded"}, received_at=T0 + HOUR)
        tx.reports.add(
            c2,
            "SecurityEventNotification",
            "other charger",
            {},
            received_at=T0 + HOUR,
            reported_at=T0,
        )
        body["status"] = "changed after the fact"  # what was stored stays as it was received
    with app.store.reading() as tx:
        mine = tx.reports.of(c1)
        assert [(r.action, r.charger_id) for r in mine] == [
            ("FirmwareStatusNotification", c1),
            ("LogStatusNotification", c1),
        ]
        firmware, log = mine
        assert firmware.report_id == first
        assert firmware.body == {
            "status": "Installed",
            "requestId": 7,
            "nested": [{"name": "Zähler", "value": None}],
        }
        assert (firmware.summary, firmware.reported_at, firmware.received_at) == ("Installed", None, T0)
        assert len(log.summary) == 500
        assert [r.action for r in tx.reports.of(c1, ["LogStatusNotification"])] == ["LogStatusNotification"]
        assert tx.reports.of(c1, ["NotifyReport"]) == []
        (theirs,) = tx.reports.of(c2)
        assert theirs.reported_at == T0
    with app.store.transaction() as tx:  # a charger removed takes its reports with it
        tx.chargers.remove("CP1")
        assert tx.reports.of(c1) == [] and len(tx.reports.of(c2)) == 1
    with pytest.raises(Exception), app.store.transaction() as tx:  # noqa: B017
        tx.reports.add(c1, "FirmwareStatusNotification", "gone", {}, received_at=T0)  # no such charger


# ---- the map search ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_search_matches_the_brute_force_oracle(app: App, seed: int) -> None:
    rng = random.Random(seed)
    fleet = random_fleet(app, rng, 60, at=T0)
    for _ in range(40):
        search_matches_oracle(app, fleet, random_query(rng, T0))


def test_a_radius_search_finds_a_charger_where_the_circle_is_widest(app: App) -> None:
    """North of its centre a circle reaches farther east than at the centre's latitude; a charger
    there, within the radius, is found (a box taken at the centre's latitude cut it off)."""
    centre, radius, edge = EDGE_CENTRE, EDGE_RADIUS_M, EDGE_POINT
    with app.store.transaction() as tx:
        host = tx.accounts.add_host("host")
        near = tx.chargers.add(spec("NEAR", host, lat=centre.lat, lon=centre.lon))
        far = tx.chargers.add(spec("EDGE", host, lat=edge.lat, lon=edge.lon))
    with app.store.reading() as tx:
        found = [c.charger_id for c in tx.chargers.search(SearchQuery(centre=centre, radius_m=radius))]
    assert found == [near, far]


def test_ties_in_distance_across_the_limit_go_by_id(app: App) -> None:
    """Chargers at one spot are the same distance on every backend: the limit takes the lowest ids,
    whichever order they were added in or the index yields them, as the oracle does."""
    centre = Point(51.45, -2.59)
    with app.store.transaction() as tx:
        host = tx.accounts.add_host("host")
        ids = [tx.chargers.add(spec(f"TIE{i}", host, lat=51.46, lon=-2.59)) for i in range(7)]
        farther = tx.chargers.add(spec("FAR", host, lat=51.47, lon=-2.59))
        nearest = tx.chargers.add(spec("NEAR", host, lat=51.451, lon=-2.59))  # the highest id, first
    radius = SearchQuery(centre=centre, radius_m=5_000, limit=5)
    box = SearchQuery(bbox=BBox(-2.62, 51.42, -2.56, 51.48), limit=5)  # its middle is the centre
    for q in (radius, box):
        for limit in (1, 2, 5, 8, 9):
            with app.store.reading() as tx:
                got = [c.charger_id for c in tx.chargers.search(dataclasses.replace(q, limit=limit))]
            assert got == ([nearest, *sorted(ids), farther])[:limit], (q, limit)


def test_search_sees_connectors_and_prices_as_they_change(app: App) -> None:
    """The SQL stores keep a summary of each charger's connectors in the search index; every way of
    changing them (and the price) shows in the next search."""

    def found(**filters: object) -> bool:
        q = SearchQuery(centre=Point(51.45, -2.59), radius_m=1_000, **filters)  # type: ignore[arg-type]
        with app.store.reading() as tx:
            return [c.charger_id for c in tx.chargers.search(q)] == [charger]

    with app.store.transaction() as tx:
        charger, _ = a_charger(tx)  # one Type 2 at 7.4 kW, 30p
    assert found(connector_type=ConnectorType.TYPE2, min_power_w=7_400, max_price_per_kwh=30)
    assert not found(connector_type=ConnectorType.CCS)
    assert not found(min_power_w=7_401)
    with app.store.transaction() as tx:
        tx.chargers.add_connector(charger, 2, ConnectorType.CCS, 50_000)
    assert found(connector_type=ConnectorType.CCS, min_power_w=50_000) and found(min_power_w=50_000)
    with app.store.transaction() as tx:
        tx.chargers.update_connector(charger, 2, type_=ConnectorType.CHADEMO, max_power_w=22_000)
    assert not found(connector_type=ConnectorType.CCS) and not found(min_power_w=22_001)
    assert found(connector_type=ConnectorType.CHADEMO, min_power_w=22_000)
    with app.store.transaction() as tx:
        tx.chargers.remove_connector(charger, 1)
    assert not found(connector_type=ConnectorType.TYPE2) and found(connector_type=ConnectorType.CHADEMO)
    with app.store.transaction() as tx:
        tx.chargers.update(charger, price_per_kwh=45)
    assert not found(max_price_per_kwh=44) and found(max_price_per_kwh=45)
    with app.store.transaction() as tx:  # a connector of 0 W is still of its type
        tx.chargers.update_connector(charger, 2, max_power_w=0)
    assert found(connector_type=ConnectorType.CHADEMO) and found(min_power_w=0)


def test_payment_steps_are_claimed_by_one_worker_at_a_time(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx)
        driver = tx.accounts.add_driver("D", "T")
        b1, b2 = a_booking(tx, c1, driver), a_booking(tx, c1, driver, 3)
        tx.outbox.enqueue(b1, "capture", 120, "k1", T0)
        tx.outbox.enqueue(b2, "release", 0, "k2", T0, due_at=T0 + HOUR)  # backing off
        # A placement in flight: its worker holds it until it is due (the placement timeout).
        tx.outbox.enqueue(b2, "hold", 300, "k3", T0, due_at=T0 + 2 * HOUR, claimed_by="web-1")
    lease = T0 + timedelta(minutes=5)
    with app.store.transaction() as tx:
        assert tx.outbox.next_claimable_at() == T0  # k1, due now and unheld
        (k1,) = tx.outbox.claim_due(T0, 10, "w1", lease)
        assert (k1.idempotency_key, k1.claimed_by, k1.lease_until) == ("k1", "w1", lease)
        assert tx.outbox.next_claimable_at() == lease  # k1 again, should w1 die; before k2 is due
        assert tx.outbox.claim_due(T0, 10, "w2", lease) == []  # held by w1, the rest not due
        assert tx.outbox.claim_of(b1, T0, "w2", lease) == []
        held = tx.outbox.get("k3")
        assert held is not None and (held.claimed_by, held.next_attempt_at) == ("web-1", T0 + 2 * HOUR)
        # Only the holder may finish it, and only once.
        assert not tx.outbox.finish(
            k1.item_id, "w2", status="done", attempts=1, next_attempt_at=T0, last_error=None
        )
        assert tx.outbox.finish(
            k1.item_id,
            "w1",
            status="done",
            attempts=1,
            next_attempt_at=T0,
            last_error=None,
            done_at=T0,
            reference="r1",
        )
        assert not tx.outbox.finish(
            k1.item_id, "w1", status="done", attempts=2, next_attempt_at=T0, last_error=None
        )
        done = tx.outbox.get("k1")
        assert done is not None and (done.status, done.attempts, done.claimed_by, done.reference) == (
            "done",
            1,
            None,
            "r1",
        )
    with app.store.transaction() as tx:
        # Due, and k3's lease has run out: whoever comes next takes both, oldest first.
        late = T0 + 3 * HOUR
        assert [i.idempotency_key for i in tx.outbox.claim_due(late, 10, "w2", late + HOUR)] == ["k2", "k3"]
        # A lapsed lease can be taken over; the first holder has lost it.
        taken = tx.outbox.claim_of(b2, late + 2 * HOUR, "w3", late + 3 * HOUR)
        assert [i.idempotency_key for i in taken] == ["k2", "k3"]
        k2 = taken[0]
        assert not tx.outbox.finish(
            k2.item_id, "w2", status="done", attempts=1, next_attempt_at=late, last_error=None
        )
        assert tx.outbox.finish(
            k2.item_id, "w3", status="pending", attempts=1, next_attempt_at=late, last_error="x"
        )
        again = tx.outbox.get("k2")
        assert again is not None and (again.status, again.claimed_by, again.last_error) == (
            "pending",
            None,
            "x",
        )
        k3 = taken[1]

        def dead_letter(now: datetime) -> bool:
            return tx.outbox.update(
                k3.item_id,
                expected="pending",
                expected_attempts=k3.attempts,
                now=now,
                status="dead",
                attempts=6,
                next_attempt_at=late,
                last_error="gone",
            )

        assert not dead_letter(late + 2 * HOUR)  # not while a worker's lease holds it
        assert dead_letter(late + 3 * HOUR)  # once that lapses, the claim is let go
        dead = tx.outbox.get("k3")
        assert dead is not None and (dead.status, dead.claimed_by, dead.lease_until) == ("dead", None, None)


def test_a_payment_step_is_repriced_only_while_no_worker_ever_had_it(app: App) -> None:
    """A claim, an attempt or an error kept (a dead letter or a lapsed claim that reconcile put
    back, attempts reset and claim cleared) each mean a gateway call may have gone out under the
    step's key: its amount stays."""
    lease = T0 + timedelta(minutes=5)
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx)
        driver = tx.accounts.add_driver("D", "T")
        bookings = [a_booking(tx, c1, driver, start_h) for start_h in (0, 2, 4)]
        for booking in bookings:
            tx.outbox.enqueue(booking, "capture", 120, f"k{booking}", T0)
        k1, k2, k3 = (f"k{b}" for b in bookings)
        assert tx.outbox.reprice_unworked(k1, 150)
        assert len(tx.outbox.claim_of(bookings[1], T0, "w1", lease)) == 1
        assert not tx.outbox.reprice_unworked(k2, 150)  # claimed
        (lapsed,) = tx.outbox.claim_of(bookings[2], T0, "w1", lease)
        assert tx.outbox.update(
            lapsed.item_id,
            expected="pending",
            expected_attempts=0,
            now=lease,
            status="pending",
            attempts=0,
            next_attempt_at=lease,
            last_error="claim lapsed",
        )
        assert not tx.outbox.reprice_unworked(k3, 150)  # unclaimed, untried, but an error kept
        assert not tx.outbox.reprice_unworked("k-none", 150)
        amounts = [i.amount for k in (k1, k2, k3) if (i := tx.outbox.get(k)) is not None]
    assert amounts == [150, 120, 120]


def test_a_booking_changes_status_only_from_the_status_read(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx)
        booking = a_booking(tx, c1, tx.accounts.add_driver("D", "T"))
        assert tx.bookings.update(booking, BookingStatus.CONFIRMED, expected=BookingStatus.REQUESTED)
        assert not tx.bookings.update(
            booking, BookingStatus.CANCELLED, fee=99, expected=BookingStatus.REQUESTED
        )
        got = tx.bookings.get(booking)
        assert (got.status, got.fee) == (BookingStatus.CONFIRMED, 0)
        assert tx.bookings.update(booking, BookingStatus.CANCELLED)  # unconditional
        with pytest.raises(NotFound):
            tx.bookings.update(999_999, BookingStatus.FAILED, expected=BookingStatus.REQUESTED)
        assert tx.bookings.fence_of(c1) == 0
        tx.bookings.add(
            driver_id=got.driver_id,
            connector_id=c1,
            starts_at=T0 + 9 * HOUR,
            ends_at=T0 + 10 * HOUR,
            max_energy_wh=1,
            price_per_kwh=1,
            hold_amount=1,
            created_at=T0,
            fencing_token=41,
        )
        assert tx.bookings.fence_of(c1) == 41
        assert tx.bookings.fence_of(999_999) == 0
        tx.accounts.lock_host(tx.chargers.all()[0].host_id)  # held to the end of the unit of work


def test_whether_another_bookings_session_held_a_connector(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1,) = a_charger(tx, "CP1")
        _, (c2,) = a_charger(tx, "CP2")
        driver = tx.accounts.add_driver("D", "T")
        earlier, mine = a_booking(tx, c1, driver, 0), a_booking(tx, c1, driver, 1)
        session = tx.sessions.add(
            booking_id=earlier, connector_id=c1, id_tag="T", started_at=T0, meter_start_wh=0
        )
        window = (T0 + HOUR, T0 + HOUR + timedelta(minutes=15))
        assert tx.sessions.held_by_another(c1, mine, *window)  # open: still there
        assert not tx.sessions.held_by_another(c1, earlier, *window)  # its own booking's
        assert not tx.sessions.held_by_another(c2, mine, *window)  # another connector
        assert not tx.sessions.held_by_another(c1, mine, T0 - HOUR, T0)  # before it started
        assert tx.sessions.stop(
            session, stopped_at=T0 + HOUR, meter_stop_wh=10, billed_wh=10, cost=1, idle_fee=0
        )
        assert not tx.sessions.held_by_another(c1, mine, *window)  # gone as the window began
        assert tx.sessions.held_by_another(c1, mine, T0 + timedelta(minutes=59), window[1])


def test_charger_files_published_slotted_filled_once_and_listed(app: App) -> None:
    with app.store.transaction() as tx:
        image = tx.files.add("tok-firmware-000001", "firmware", None, "fw.bin", T0, b"\x00\x01image")
        assert (image.size, image.received_at, image.kind) == (7, T0, "firmware")
        slot = tx.files.add("tok-log-0000000001", "log", "CP1", "CP1.log", T0, None)
        assert (slot.size, slot.sha256, slot.received_at) == (None, None, None)
        assert tx.files.content("tok-log-0000000001") is None
        assert tx.files.fill("tok-log-0000000001", b"log!", "ab" * 32, T0 + HOUR)
        assert not tx.files.fill("tok-log-0000000001", b"again", "cd" * 32, T0 + HOUR)  # once
        assert not tx.files.fill("tok-firmware-000001", b"over", "cd" * 32, T0)  # an image holds its own
        filled = tx.files.by_token("tok-log-0000000001")
        assert (filled.size, filled.sha256, filled.received_at) == (4, "ab" * 32, T0 + HOUR)
        assert tx.files.content("tok-log-0000000001") == b"log!"
        assert tx.files.content("tok-firmware-000001") == b"\x00\x01image"
        tx.files.add("tok-log-0000000002", "log", "CP1", "CP1.log", T0 + HOUR, None)
        tx.files.add("tok-log-0000000003", "log", "CP2", "CP2.log", T0, None)
        assert [f.token for f in tx.files.of_charger("CP1")] == ["tok-log-0000000001", "tok-log-0000000002"]
        assert [f.token for f in tx.files.firmware()] == ["tok-firmware-000001"]
        for missing in (tx.files.by_token, tx.files.content):
            with pytest.raises(NotFound):
                missing("no-such-token-0000")
        assert not tx.files.fill("no-such-token-0000", b"x", "ef" * 32, T0)


# ---- reads for a list of ids at once (the query layer's read models) ----------------------------------
def test_reads_for_a_list_of_ids_find_each_one_once(app: App) -> None:
    with app.store.transaction() as tx:
        noted, (c1,) = a_charger(tx, "CP1")
        plain, (c2,) = a_charger(tx, "CP2")
        tx.chargers.set_access_notes(noted, "gate 1234")
        driver = tx.accounts.add_driver("D", "T")
        started, other, bare = (
            a_booking(tx, c1, driver),
            a_booking(tx, c2, driver),
            a_booking(tx, c1, driver, 3),
        )
        s1 = tx.sessions.add(booking_id=started, connector_id=c1, id_tag="T", started_at=T0, meter_start_wh=0)
        s2 = tx.sessions.add(booking_id=other, connector_id=c2, id_tag="T", started_at=T0, meter_start_wh=5)
        tx.ledger.add(
            [entry("b", started, 300, at_h=1), entry("a", started, 200, at_h=1), entry("c", other, 100)]
        )
    with app.store.reading() as tx:
        assert tx.chargers.access_notes_of([noted, plain, 999_999]) == {noted: "gate 1234"}
        assert tx.chargers.access_notes_of([]) == {}
        sessions = tx.sessions.for_bookings([started, other, bare, 999_999])
        assert sessions == {started: tx.sessions.get(s1), other: tx.sessions.get(s2)}
        assert tx.sessions.for_bookings([]) == {}
        assert tx.sessions.charge_points_of([s1, s2, 999_999]) == {s1: "CP1", s2: "CP2"}
        assert tx.sessions.charge_points_of([]) == {}
        journal = tx.ledger.entries_of([started, other, bare])
        assert {b: [e.entry_id for e in es] for b, es in journal.items()} == {
            started: ["b", "a"],
            other: ["c"],
        }
        assert journal[started] == list(tx.ledger.entries(started))  # the same entries, in the same order
        assert tx.ledger.entries_of([]) == {}


def test_drivers_payout_checks(app: App) -> None:
    """A driver's payout details are unchecked (pending) until the operator records an outcome; only
    verified drivers are paid their export credits."""
    with app.store.transaction() as tx:
        dee = tx.accounts.add_driver("Dee", "DEE")
        eve = tx.accounts.add_driver("Eve", "EVE")
        assert tx.accounts.driver_kyc(dee) == "pending" and tx.accounts.verified_drivers() == set()
        tx.accounts.set_driver_kyc(dee, "verified", T0)
        tx.accounts.set_driver_kyc(eve, "rejected", T0)
    with app.store.transaction() as tx:
        assert tx.accounts.verified_drivers() == {dee}
        assert (tx.accounts.driver_kyc(dee), tx.accounts.driver_kyc(eve)) == ("verified", "rejected")
        tx.accounts.set_driver_kyc(dee, "pending", T0)
        assert tx.accounts.verified_drivers() == set()
        with pytest.raises(NotFound):
            tx.accounts.set_driver_kyc(999_999, "verified", T0)
        with pytest.raises(NotFound):
            tx.accounts.driver_kyc(999_999)


def test_a_late_stop_rebills_or_is_kept_once_and_operators_page_through_them(app: App) -> None:
    with app.store.transaction() as tx:
        _, (c1, c2, c3) = a_charger(tx, "CP-LATE", 1, 2, 3)
        driver = tx.accounts.add_driver("D", "T")
        sessions = []
        for i, connector in enumerate((c1, c2, c3)):
            booking = a_booking(tx, connector, driver, start_h=i)
            s = tx.sessions.add(
                booking_id=booking, connector_id=connector, id_tag="T", started_at=T0, meter_start_wh=1_000
            )
            assert tx.sessions.stop(
                s, stopped_at=T0, meter_stop_wh=1_300, billed_wh=300, cost=9, closed_lost=True
            )
            sessions.append(s)
        rebilled, kept, plain = sessions
        assert tx.sessions.late_stops(0, 10) == []
        for done in (True, False):  # on the reading it was billed on, once
            assert done == tx.sessions.rebill(
                rebilled,
                billed_stop_wh=1_300,
                meter_stop_wh=2_000,
                billed_wh=1_000,
                cost=30,
                at=T0 + HOUR,
                export_wh=55_000,
            )
        assert not tx.sessions.record_late_stop(  # on a reading it is no longer billed on
            kept, 2_000, T0 + 2 * HOUR, 55_000, billed_stop_wh=1_000
        )
        assert tx.sessions.record_late_stop(kept, 2_000, T0 + 2 * HOUR, 55_000, billed_stop_wh=1_300)
        assert not tx.sessions.record_late_stop(  # not above
            kept, 2_000, T0 + 3 * HOUR, 55_000, billed_stop_wh=1_300
        )
        got = {s.session_id: s for s in tx.sessions.late_stops(0, 10)}
        assert sorted(got) == [rebilled, kept]
        assert (got[rebilled].meter_stop_wh, got[rebilled].late_rebilled_at) == (2_000, T0 + HOUR)
        assert (got[rebilled].late_stop_wh, got[rebilled].late_export_wh) == (None, 55_000)
        assert (got[kept].late_stop_wh, got[kept].late_stop_at) == (2_000, T0 + 2 * HOUR)
        assert (got[kept].late_export_wh, got[kept].late_rebilled_at) == (55_000, None)
        assert [s.session_id for s in tx.sessions.late_stops(0, 1)] == [rebilled]
        assert [s.session_id for s in tx.sessions.late_stops(rebilled, 1)] == [kept]
        assert tx.sessions.late_stops(kept, 10) == []
        assert plain not in got


def test_late_stops_keep_their_highest_readings_and_take_an_export_only_one_once(app: App) -> None:
    """A late stop must bring something new, a higher import reading or a higher export reading
    (an export-only stop of a V2G car), and each column keeps its highest: a stop without an export
    reading, or with a lower one, loses none."""
    with app.store.transaction() as tx:
        _, (c1, c2) = a_charger(tx, "CP-LATE2", 1, 2)
        driver = tx.accounts.add_driver("D", "T")
        sessions = []
        for i, connector in enumerate((c1, c2)):
            booking = a_booking(tx, connector, driver, start_h=i)
            s = tx.sessions.add(
                booking_id=booking, connector_id=connector, id_tag="T", started_at=T0, meter_start_wh=1_000
            )
            assert tx.sessions.stop(
                s, stopped_at=T0, meter_stop_wh=1_300, billed_wh=300, cost=9, closed_lost=True
            )
            sessions.append(s)
        rebilled, kept = sessions

        def rebill(stop_wh: int, export_wh: int | None, billed_stop_wh: int = 1_300) -> bool:
            return tx.sessions.rebill(
                rebilled,
                billed_stop_wh=billed_stop_wh,
                meter_stop_wh=stop_wh,
                billed_wh=stop_wh - 1_000,
                cost=9,
                at=T0 + HOUR,
                export_wh=export_wh,
            )

        assert rebill(1_300, 55_000) and not rebill(1_300, 55_000)  # export only, once
        assert not rebill(1_300, None) and not rebill(1_300, 54_000)  # nothing new
        assert rebill(2_000, None, billed_stop_wh=1_300)  # a higher import, no export reading
        got = tx.sessions.get(rebilled)
        assert got is not None and (got.meter_stop_wh, got.late_export_wh) == (2_000, 55_000)

        def keep(register_wh: int, export_wh: int | None, at: int) -> bool:
            return tx.sessions.record_late_stop(
                kept, register_wh, T0 + at * HOUR, export_wh, billed_stop_wh=1_300
            )

        assert keep(1_300, 55_000, 1) and not keep(1_300, 55_000, 2)  # export only, once
        assert keep(2_000, None, 3)  # a higher import, no export reading: the export stays
        assert not keep(1_900, 54_000, 4)  # lower both
        assert keep(1_900, 56_000, 5)  # a higher export, a lower import: the import stays
        got = tx.sessions.get(kept)
        assert got is not None
        assert (got.late_stop_wh, got.late_export_wh, got.late_stop_at) == (2_000, 56_000, T0 + 5 * HOUR)
