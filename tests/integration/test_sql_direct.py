"""Every statement the store runs straight on the driver gives what `Connection.execute` gives:
the same rows (converted back the same way: aware datetimes, booleans, floats) and the same row
counts, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time, timedelta
from typing import Any

import pytest
from sqlalchemy import String, bindparam, create_engine, delete, insert, select
from sqlalchemy.dialects import sqlite

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql import statements
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.bootstrap import App, Config
from chargeshare.domain.availability import WeeklyWindow
from chargeshare.domain.dynamic_pricing import HostPricing, Price, PricingMode, SmartTariff
from chargeshare.domain.fleet import WEEKDAYS, BlockRule, ContractPolicy
from chargeshare.domain.held_quotes import HeldQuote
from chargeshare.domain.smart_charge_points import SmartSettings
from chargeshare.domain.tokens import TokenStatus, TokenType
from chargeshare.domain.v2g import ExportTerms
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.conftest import T0, add_charger, build_for_tests, sql_store

DIRECT = statements.ALL


@pytest.fixture(scope="module")
def sqlite_world() -> Iterator[tuple[App, dict[str, Any]]]:
    """The SQLite world, built once: each test gets a copy of its database (`world`)."""
    clock = ManualClock(T0)
    app = build_for_tests(Config(database_url="sqlite://", locks_enabled=False), clock=clock)
    values = populate(app, clock)
    yield app, values
    app.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[tuple[App, dict[str, Any]]]:
    if request.param == "sqlite":
        built, values = request.getfixturevalue("sqlite_world")
        config = Config(database_url="sqlite://", locks_enabled=False)
        app = build_for_tests(config, clock=ManualClock(built.clock.now()), like=sql_store(built))
    else:
        app = build_for_tests(
            Config(database_url=request.getfixturevalue("postgres_url"), locks_enabled=False), clock=clock
        )
        values = populate(app, clock)
    yield app, values
    app.close()


def populate(app: App, clock: ManualClock) -> dict[str, Any]:
    """Rows for every direct statement to find or touch, and the values its parameters take."""
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG1").driver_id
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).booking_id
    clock.advance(60)
    started_at = clock.now()
    session = app.charging.start("CP1", 1, "TAG1", 1_000, started_at).transaction_id
    # A later booking on the same connector, still only confirmed: what a start looks for.
    later = BookRequest(driver, charger, 1, 60, 10_000, starts_at=clock.now() + timedelta(hours=3))
    later_booking = app.bookings.book(later, request_key="req-later").booking_id
    # A cancelled booking whose reservation the charger may still hold: owed a CancelReservation.
    gone = BookRequest(driver, charger, 1, 60, 10_000, starts_at=clock.now() + timedelta(hours=6))
    gone_booking = app.bookings.book(gone).booking_id
    with app.store.transaction() as tx:
        tx.bookings.set_reservation(gone_booking, "accepted")
    app.bookings.cancel(gone_booking, driver_id=driver)
    # A session on another charger, stopped at 2,000 Wh: what a late stop rebills or is kept on
    # (before the grid below: a stop decides the limits again).
    other = add_charger(app, "CP9")
    other_driver = app.marketplace.add_driver("D9", "TAG9").driver_id
    app.bookings.book(BookRequest(other_driver, other, 1, 60, 10_000))
    stopped = app.charging.start("CP9", 1, "TAG9", 1_000, clock.now()).transaction_id
    app.charging.stop("CP9", stopped, 2_000, clock.now())
    with app.store.transaction() as tx:
        connector = tx.chargers.get("CP1").connectors[0].connector_id
        tx.outbox.enqueue(booking, "capture", 100, "test-capture", clock.now())
        # Over its booking's energy (a stop owed), and freed (so the lost-stop lookup finds a row).
        tx.sessions.advance_meter(session, 11_000, "CP1", clock.now())
        tx.sessions.mark_freed(session, clock.now())
        tx.outbox.enqueue(booking, "fee", 10, "test-claimed", clock.now(), claimed_by="test-worker")
        claimed_item = tx.outbox.get("test-claimed")
        assert claimed_item is not None
        an_entry = tx.ledger.entries(booking)[0].entry_id
        host = tx.chargers.get("CP1").host_id
        # Weekly hours (set after the bookings, which any window would have had to cover).
        tx.chargers.set_availability(charger, [WeeklyWindow(0, 0, 600)])
        tx.chargers.set_access_notes(charger, "gate 1234")
        # A site limit, a decided allocation, a token, a walk-in price, the host's pricing, smart
        # settings, an override and a fleet's occurrence: what a DES day reads on its hot paths.
        feeder = tx.grid.add_feeder("F1", 100_000)
        site = tx.grid.add_site(host, "site", 20_000, 0, feeder.feeder_id)
        tx.grid.place(charger, site.site_id)
        tx.grid.save_allocations(
            {connector: 3_000}, clock.now(), {connector: [(clock.now() + timedelta(minutes=3), 1_380)]}
        )
        tx.tokens.add(
            driver_id=driver,
            value="CARD1",
            type_=TokenType.ISO14443,
            status=TokenStatus.ACCEPTED,
            expires_at=None,
            group_id=None,
            master_pass=False,
            created_at=clock.now(),
        )
        tx.tokens.set_walk_in(charger, 40)
        tariff = SmartTariff(30, 10)
        tx.pricing.save(host, HostPricing(PricingMode.DYNAMIC, 20, 60, tariff), clock.now())
        if not tx.pricing.quotes([booking]):
            tx.pricing.add_quote(booking, Price(30, PricingMode.FLAT), clock.now())
        tx.smart.save(charger, SmartSettings(), clock.now())
        tx.smart.add_override(booking, clock.now())
        fleet_id = tx.fleet.add_account("Vans Ltd", driver, clock.now())
        rule = BlockRule(WEEKDAYS, time(20), time(6), date(2026, 3, 2), date(2026, 3, 31))
        contract = tx.fleet.add_contract(fleet_id, rule, ContractPolicy(), [connector], clock.now())
        tx.fleet.add_occurrence(booking, contract, fleet_id)
        # A quote held for the driver that no booking used, expired: what the sweep deletes.
        tx.pricing.hold(
            HeldQuote(
                0,
                driver,
                charger,
                clock.now(),
                clock.now() + timedelta(hours=1),
                False,
                30,
                PricingMode.FLAT,
                clock.now(),
                clock.now() + timedelta(minutes=10),
            )
        )
        # Export terms on the booking, and limits decided for the charger and not yet delivered.
        tx.v2g.set_terms(ExportTerms(booking, 20, 30, clock.now()))
        # (acknowledged once, so what its connector may hold is known, and owed again)
        tx.grid.delivered(charger, tx.grid.owe([charger], clock.now())[charger], clock.now())
        tx.grid.owe([charger], clock.now())
    # A booking left unquoted, for the quote's insert (every booking is quoted when made).
    with sql_store(app).engine.begin() as conn:
        conn.execute(delete(t.booking_quotes).where(t.booking_quotes.c.booking_id == gone_booking))
        # A refusal recorded on the stopped session: nothing is owed for it any more (the prune).
        conn.execute(
            insert(t.command_refusals).values(
                session_id=stopped, kind="override", count=1, last_at=clock.now(), unanswered=0
            )
        )
    values = {
        "stopped_session": stopped,
        "billed_stop": 2_000,
        "late_wh": 2_500,
        "late_at": clock.now(),
        "rebilled_at": clock.now(),
        "export_wh": 3_000,
        "new_amount": 150,
        "cp_id": "CP1",
        "seen_at": clock.now(),
        "charger_pk": charger,
        "new_status": "Charging",
        "old_status": "active",
        "no": 1,
        "tag": "TAG1",
        "booking_pk": booking,
        "connector_pk": connector,
        "driver_pk": driver,
        "at": clock.now(),
        "placed_at": clock.now(),
        "session_pk": session,
        "reading": 2_500,
        "since": clock.now() - timedelta(minutes=5),
        "before": clock.now() + timedelta(hours=1),
        "cutoff": clock.now() + timedelta(hours=1),
        "now": clock.now() + timedelta(days=1),
        "most": 10,
        # a stop, a booking's update, a start replayed, the payments outbox and the ledger
        "stop_at": clock.now(),
        "stop_wh": 4_000,
        "billed": 3_000,
        "cost_p": 120,
        "idle_fee_p": 0,
        "unmetered_flag": True,
        "lost_flag": False,
        "new_ends_at": None,
        "new_ref": "pi_test",
        "new_fee": None,
        "new_by": None,
        "start_wh": 1_000,
        "start_at": started_at,
        "end_at": clock.now() + timedelta(hours=1),
        "key": "test-capture",
        "step_name": "refund",
        "amount_p": 5,
        "item_pk": 1,
        "claimed_item": claimed_item.item_id,
        "due": clock.now(),
        "worker": "test-worker",
        "lease": clock.now() + timedelta(hours=1),
        "ref": None,
        "more_declines": 1,
        "tries": 2,
        "next_at": clock.now(),
        "error_text": None,
        "done": clock.now(),
        "entry_key": "test-entry",
        "entry_kind": "capture",
        "pending_key": None,
        "n": 0,
        "acct": "platform:fees",
        "an_entry": an_entry,
        "later_booking": later_booking,
        "gone_booking": gone_booking,
        "request_key": "req-later",
        "new_request_key": "req-new",
        "fingerprint": "f" * 64,
        # lists of ids as one parameter (an unknown id among them finds nothing more)
        "ids": [charger, 999],
        "connector_ids": [connector, 999],
        "booking_ids": [booking, 999],
        "session_ids": [session, 999],
        # the housekeeping sweep, reservations, the booking guard and a new booking
        "in_status": "confirmed",
        "for_status": "confirmed",
        "starts_by": clock.now() + timedelta(days=1),
        "reservation_state": "none",
        "booking_status": "confirmed",
        "state": "sent",
        "expected_state": "none",
        "expected_status": "online",
        "status_read": "done",
        "attempts_read": 1,  # item 1: the stop's capture, worked once
        "token": 10**6,
        "token_value": "CARD1",
        "row_mode": "flat",
        "row_quoted_at": clock.now(),
        "until": clock.now() + timedelta(hours=1),
        "version": "2.0.1",
        "row_host_id": host,
        "row_kind": "offline",
        "row_subject": "a subject",
        "row_body": "a body",
        "row_created_at": clock.now(),
        "row_driver_id": driver,
        "row_connector_id": connector,
        "row_starts_at": clock.now() + timedelta(days=2),
        "row_ends_at": clock.now() + timedelta(days=2, hours=1),
        "row_status": "requested",
        "row_max_energy_wh": 10_000,
        "row_price_per_kwh": 30,
        "row_hold_amount": 500,
        "row_fee": 0,
        "row_reservation": "none",
        "row_connector_held": False,
        # registration
        "row_name": "a name",
        "row_id_tag": "TAG-NEW",
        "row_charge_point_id": "CP-NEW",
        "row_boot_policy": "Pending",
        "row_title": "a title",
        "row_lat": 51.5,
        "row_lon": -0.1,
        "row_charger_id": charger,
        "row_connector_no": 2,
        "row_type": "type2",
        "row_fence_token": 0,
        "row_max_power_w": 7400,
        "row_id": 1000,
        "row_min_lon": -0.1,
        "row_max_lon": -0.1,
        "row_min_lat": 51.5,
        "row_max_lat": 51.5,
        # What a charger's connectors offer, on its row and in the R*Tree (scaled there).
        "row_best_power_w": 7400,
        "row_type2_power_w": 7400,
        "row_ccs_power_w": -1,
        "row_chademo_power_w": -1,
        **{
            f"row_{name}": 0.0
            for name in ("type2_w", "best_w_a", "neg_price", "ccs_w", "chademo_w", "best_w")
        },
    }
    return values


def both_ways(app: App, direct: DirectStatement, values: dict[str, Any]) -> tuple[Any, Any]:
    """The statement through SQLAlchemy and straight on the driver, each in a rolled-back transaction."""
    out = []
    for straight in (False, True):
        conn = sql_store(app).engine.connect()
        try:
            with conn.begin() as tx:
                # Rows only from an explicit RETURNING (PostgreSQL adds one to inserts for their ids,
                # which SQLAlchemy keeps to itself); SQLite's compile shows which statements have one.
                if direct.compiled(sqlite.dialect()).keys:
                    if straight:
                        got: Any = direct.rows(conn, values)
                    else:
                        got = [tuple(r) for r in conn.execute(direct.stmt, values)]
                elif straight:
                    got = direct.write(conn, values)
                else:
                    result = conn.execute(direct.stmt, values)
                    # psycopg reports no count for an insert SQLAlchemy added RETURNING to: count ids
                    got = result.rowcount if result.rowcount >= 0 else len(result.inserted_primary_key_rows)
                tx.rollback()
        finally:
            conn.close()
        out.append(got)
    return out[0], out[1]


def test_every_direct_statement_is_covered_here() -> None:
    assert len(DIRECT) >= 28, sorted(DIRECT)


# Inserts that would collide with the world's own rows get fresh keys (or the keys they must meet).
FRESH: dict[str, dict[str, Any]] = {
    "outbox.enqueue": {"key": "fresh-key"},
    "ledger.insert_posting": {"entry_key": "an_entry", "n": 99},
    "sessions.insert": {"booking_pk": "later_booking", "start_wh": 1_500},
    "chargers.status_of_connectors": {"ids": "connector_ids"},
    "bookings.set_reservation_if": {"booking_pk": "later_booking"},
    "bookings.set_reservation_while": {"booking_pk": "later_booking"},
    "outbox.finish": {"item_pk": "claimed_item"},
    "sessions.held_by_another": {"booking_pk": "later_booking"},
    "pricing.add_quote": {"row_booking_id": "gone_booking"},
    "sessions.rebill": {"session_pk": "stopped_session"},
    "sessions.record_late_stop": {"session_pk": "stopped_session"},
}


NEW_IDS = {"sessions.insert", "bookings.insert", "accounts.add_host", "accounts.add_driver", "chargers.add"}


@pytest.mark.parametrize("name", sorted(DIRECT))
def test_direct_statement_matches_sqlalchemy(world: tuple[App, dict[str, Any]], name: str) -> None:
    app, values = world
    values = {
        **values,
        **{k: values.get(v, v) if isinstance(v, str) else v for k, v in FRESH.get(name, {}).items()},
    }
    via_sqlalchemy, via_driver = both_ways(app, DIRECT[name], values)
    if name in NEW_IDS:  # a sequence is not rolled back on PostgreSQL: each insert gets the next id
        via_sqlalchemy, via_driver = (
            [len(r) for r in got] if isinstance(got, list) else got for got in (via_sqlalchemy, via_driver)
        )
    assert via_driver == via_sqlalchemy
    # Not vacuous: each statement finds or touches something in this world.
    assert via_driver not in ([], 0), f"{name} matched nothing; the comparison proves little"
    if isinstance(via_driver, list) and name not in NEW_IDS:
        assert [type(v) for v in via_driver[0]] == [type(v) for v in via_sqlalchemy[0]]


DIALECT_ONLY = {"sqlite": statements.SQLITE_ONLY, "postgresql": statements.POSTGRES_ONLY}


@pytest.mark.parametrize("name", sorted(set(statements.SQLITE_ONLY) | set(statements.POSTGRES_ONLY)))
def test_dialect_statement_matches_sqlalchemy(world: tuple[App, dict[str, Any]], name: str) -> None:
    # An R*Tree insert exists on SQLite alone (PostGIS indexes the row itself); an insert that skips
    # a conflict is written in each dialect's own words.
    app, values = world
    statement = DIALECT_ONLY[app.store.dialect].get(name)
    if statement is None:
        pytest.skip(f"{name} has no {app.store.dialect} form")
    via_sqlalchemy, via_driver = both_ways(app, statement, values)
    assert via_driver == via_sqlalchemy == 1


@pytest.mark.parametrize("url", ["sqlite://", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_parameters_whose_names_the_sql_escapes(request: pytest.FixtureRequest, url: str) -> None:
    # psycopg's SQL cannot hold `a b` or `x%y` as written: SQLAlchemy renders them escaped.
    names = ["from", "a b", "x%y", "p.q", "w[1]", "a(b)", "q'\"", "values"]
    stmt = select(*[bindparam(n, type_=String).label(f"c{i}") for i, n in enumerate(names)])
    values = {n: f"value of {n}" for n in names}
    engine = create_engine(request.getfixturevalue("postgres_url") if url == "postgres" else url)
    try:
        with engine.connect() as conn:
            assert DirectStatement(stmt).first(conn, values) == tuple(conn.execute(stmt, values).one())
    finally:
        engine.dispose()


def test_parameters_rendered_per_call_are_refused_when_compiled() -> None:
    # Their SQL holds a placeholder (`__[POSTCOMPILE_x]`) only `Connection.execute` fills.
    literal = select(t.hosts.c.id).where(t.hosts.c.id == bindparam("x", literal_execute=True))
    expanding = select(t.hosts.c.id).where(t.hosts.c.id.in_(bindparam("ids", expanding=True)))
    for stmt in (literal, expanding):
        with pytest.raises(ValueError, match="per call"):
            DirectStatement(stmt).compiled(sqlite.dialect())
