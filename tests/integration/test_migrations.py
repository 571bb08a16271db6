"""Schema versions under Alembic: fresh databases, databases made before migrations, restarts that
change nothing, and several processes starting at once on an empty PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DataError, IntegrityError

from chargeshare.adapters.sql import migrate
from chargeshare.adapters.sql.grid import SqlGrid
from chargeshare.adapters.sql.store import make_engine
from chargeshare.bootstrap import App, Config, build
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.conftest import T0, add_charger
from tests.integration.pausing import lock_waits
from tests.services.test_v2g_home_buyer import Site


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cs.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    e = make_engine(url)
    yield e
    e.dispose()


def shape(engine: Engine) -> dict[str, list[tuple[str, str, bool]]]:
    """Tables and their columns (name, type, nullable): what a migration must reproduce."""
    insp = inspect(engine)
    return {
        table: sorted((c["name"], str(c["type"]), bool(c["nullable"])) for c in insp.get_columns(table))
        for table in sorted(insp.get_table_names())
        if table != "spatial_ref_sys"
    }


def test_the_head_constant_is_the_scripts_head() -> None:
    assert migrate.head_of_scripts() == migrate.HEAD


def test_a_fresh_database_is_created_at_the_head_and_a_restart_runs_no_ddl(engine: Engine) -> None:
    assert migrate.upgrade(engine) == "created"
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert migrate.upgrade(engine) == "current"
    ddl = [s for s in statements if s.split()[0].upper() in ("CREATE", "ALTER", "DROP")]
    assert ddl == [], ddl
    migrate.check_current(engine)


def test_a_database_made_before_migrations_is_upgraded_to_the_same_schema(url: str, engine: Engine) -> None:
    migrate.upgrade(engine)
    fresh = shape(engine)
    # Back to the schema as it was before migrations existed, without a version of its own.
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), migrate.BASELINE)
        conn.commit()
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.commit()
    assert "security_events" not in shape(engine)
    with pytest.raises(migrate.SchemaBehind):
        migrate.check_current(engine)
    assert migrate.upgrade(engine) == f"upgraded from {migrate.BASELINE}"
    assert shape(engine) == fresh
    migrate.check_current(engine)


@pytest.mark.postgres
def test_processes_starting_at_once_on_an_empty_database_all_come_up(postgres_url: str) -> None:
    engines = [create_engine(postgres_url) for _ in range(3)]
    results: list[Any] = []
    start = threading.Barrier(len(engines))

    def boot(e: Engine) -> None:
        start.wait()
        try:
            results.append(migrate.upgrade(e))
        except Exception as exc:  # the test reports it
            results.append(exc)

    threads = [threading.Thread(target=boot, args=(e,)) for e in engines]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    for e in engines:
        e.dispose()
    assert sorted(map(str, results)) == ["created", "current", "current"], results
    check = create_engine(postgres_url)
    with check.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == migrate.HEAD
    check.dispose()


def test_upgrading_to_folded_id_tags_refuses_case_variants_after_and_names_those_before(
    engine: Engine,
) -> None:
    """0011: token values and drivers' tags unique in any case of their letters. A database holding
    values that clash so is not upgraded (nothing chosen between them), and says which they are."""
    migrate.upgrade(engine)
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0010")
        conn.commit()
        conn.exec_driver_sql("INSERT INTO drivers (id, name, id_tag) VALUES (1, 'Ann', 'ANN-TAG')")
        conn.exec_driver_sql("INSERT INTO drivers (id, name, id_tag) VALUES (2, 'Bob', 'bob-tag')")
        for value, driver in (("CARD-1", 1), ("card-1", 2), ("BOB-TAG", 1)):
            conn.exec_driver_sql(
                "INSERT INTO id_tokens (driver_id, value, type, status, master_pass, created_at) "
                f"VALUES ({driver}, '{value}', 'ISO14443', 'Accepted', false, '2026-01-01 00:00:00')"
            )
        conn.commit()
    with pytest.raises(Exception, match=r"CARD-1.*card-1.*'BOB-TAG' of another driver than tag 'bob-tag'"):
        migrate.upgrade(engine)
    with engine.connect() as conn:
        assert migrate.current(conn) == "0010"
        conn.exec_driver_sql("DELETE FROM id_tokens WHERE value IN ('card-1', 'BOB-TAG')")
        conn.commit()
    assert migrate.upgrade(engine) == "upgraded from 0010"
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO drivers (name, id_tag) VALUES ('Eve', 'ann-tag')")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO id_tokens (driver_id, value, type, status, master_pass, created_at) "
            "VALUES (2, 'Card-1', 'ISO14443', 'Accepted', false, '2026-01-01 00:00:00')"
        )
    migrate.check_current(engine)


def test_upgrading_from_0011_adds_seller_details_and_keeps_the_hosts(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0011")
        conn.commit()
        assert "host_seller_details" not in inspect(conn).get_table_names()
        conn.execute(text("INSERT INTO hosts (name) VALUES ('Ann')"))
        conn.commit()
    assert migrate.upgrade(engine) == "upgraded from 0011"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM hosts")).scalars().all() == ["Ann"]
        assert conn.execute(text("SELECT count(*) FROM host_seller_details")).scalar() == 0


LONG_TOKEN = "04" + "A1B2C3D4" * 4 + "EF"  # 36 characters: OCPP 2.0.1's longest idToken


def test_upgrading_from_0013_takes_id_tokens_as_long_as_ocpp_2_1_allows(url: str, engine: Engine) -> None:
    """0014: drivers' tags, token values, group ids and sessions' tags hold 255 characters (2.0.1's
    idToken is 36, 2.1's 255), and the rows there are kept. Going back is refused, naming them,
    while longer values are in the database, and done once they are gone."""
    migrate.upgrade(engine)
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0013")
        conn.commit()
        conn.exec_driver_sql("INSERT INTO drivers (id, name, id_tag) VALUES (1, 'Ann', 'ANN-TAG')")
        conn.commit()
    if url.startswith("postgresql"):  # what a 2.0.1 charger's card met before: a database error
        with pytest.raises(DataError), engine.begin() as conn:
            conn.exec_driver_sql(f"INSERT INTO drivers (name, id_tag) VALUES ('Bob', '{LONG_TOKEN}')")
    assert migrate.upgrade(engine) == "upgraded from 0013"
    widened = {
        (table, name): kind
        for table, columns in shape(engine).items()
        for name, kind, _ in columns
        if (table, name)
        in {("drivers", "id_tag"), ("sessions", "id_tag"), ("id_tokens", "value"), ("id_tokens", "group_id")}
    }
    assert set(widened.values()) == {"VARCHAR(255)"}, widened
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO id_tokens (driver_id, value, type, status, group_id, master_pass, created_at) "
            f"VALUES (1, '{LONG_TOKEN}', 'ISO14443', 'Accepted', '{'G' * 255}', false, "
            "'2026-01-01 00:00:00')"
        )
        names = conn.execute(text("SELECT name FROM drivers")).scalars().all()
    assert names == ["Ann"]
    migrate.check_current(engine)
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0014")  # what later revisions added, gone
        conn.commit()
        with pytest.raises(Exception, match=rf"id_tokens.value '{LONG_TOKEN}'"):
            command.downgrade(migrate.alembic_config(conn), "0013")
        conn.rollback()
        assert migrate.current(conn) == "0014"
        conn.exec_driver_sql("DELETE FROM id_tokens")
        conn.commit()
        command.downgrade(migrate.alembic_config(conn), "0013")
        conn.commit()
        kinds = {c["name"]: str(c["type"]) for c in inspect(conn).get_columns("drivers")}
        assert kinds["id_tag"] == "VARCHAR(20)"
    assert migrate.upgrade(engine) == "upgraded from 0013"


def test_upgrading_from_0017_adds_pricing_and_keeps_the_hosts(url: str, engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0017")
        conn.commit()
        assert "host_pricing" not in inspect(conn).get_table_names()
        assert "booking_quotes" not in inspect(conn).get_table_names()
        conn.execute(text("INSERT INTO hosts (name) VALUES ('Ann')"))
        conn.commit()
    assert migrate.upgrade(engine) == "upgraded from 0017"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM hosts")).scalars().all() == ["Ann"]
        assert conn.execute(text("SELECT count(*) FROM host_pricing")).scalar() == 0
        with pytest.raises(IntegrityError):  # the bounds' check came with the table
            conn.execute(
                text(
                    "INSERT INTO host_pricing VALUES "
                    "((SELECT id FROM hosts), 'dynamic', 40, 30, 25, 7, CURRENT_TIMESTAMP)"
                )
            )


def test_upgrading_from_0017_adds_the_fleet_tables_and_keeps_the_bookings(url: str, engine: Engine) -> None:
    """0020: fleet accounts, contracts, occurrences and invoices; going back drops them alone."""
    migrate.upgrade(engine)
    fleet_tables = {t for t in shape(engine) if t.startswith("fleet_")}
    assert fleet_tables == {
        "fleet_accounts",
        "fleet_contracts",
        "fleet_contract_connectors",
        "fleet_occurrences",
        "fleet_invoices",
        "fleet_invoice_lines",
        "fleet_requests",  # 0022's
    }
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0017")
        conn.commit()
        assert not {t for t in inspect(conn).get_table_names() if t.startswith("fleet_")}
        conn.exec_driver_sql("INSERT INTO drivers (id, name, id_tag) VALUES (1, 'Vans', 'VANS')")
        conn.commit()
    assert migrate.upgrade(engine) == "upgraded from 0017"
    add_fleet = "INSERT INTO fleet_accounts (name, driver_id, created_at) VALUES ('{}', 1, '2026-01-01')"
    with engine.begin() as conn:
        conn.exec_driver_sql(add_fleet.format("Vans"))
        with pytest.raises(IntegrityError), conn.begin_nested():  # one fleet per driver
            conn.exec_driver_sql(add_fleet.format("Copy"))
    migrate.check_current(engine)


def test_0019_sits_between_pricing_and_fleets_and_keeps_the_hosts(url: str, engine: Engine) -> None:
    """0019: feeders, sites, flexibility events and limits; going back to 0018 drops them (and 0020's
    fleet tables above them), and upgrading again brings both back."""
    grid_tables = {"grid_feeders", "grid_sites", "grid_site_chargers", "grid_flex_events", "grid_allocations"}
    migrate.upgrade(engine)
    assert grid_tables <= set(shape(engine))
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0018")
        conn.commit()
        left = set(inspect(conn).get_table_names())
        assert not grid_tables & left
        assert not {t for t in left if t.startswith("fleet_")}
        assert "host_pricing" in left
        conn.execute(text("INSERT INTO hosts (name) VALUES ('Ann')"))
        conn.commit()
    assert migrate.upgrade(engine) == "upgraded from 0018"
    assert grid_tables <= set(shape(engine))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM hosts")).scalars().all() == ["Ann"]
    migrate.check_current(engine)


def test_0021_adds_the_v2g_tables_above_the_fleets_and_going_back_drops_them_alone(
    url: str, engine: Engine
) -> None:
    """0021: V2G export terms and records; back to 0020 drops them (and 0022 above them), and
    upgrading brings them back."""
    migrate.upgrade(engine)
    assert {"v2g_terms", "v2g_exports"} <= set(shape(engine))
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0020")
        conn.commit()
        left = set(inspect(conn).get_table_names())
        assert not {"v2g_terms", "v2g_exports"} & left and "fleet_accounts" in left
    assert migrate.upgrade(engine) == "upgraded from 0020"


def test_upgrading_from_0021_owes_grid_limits_keeps_fleet_requests_and_checks_site_limits(
    url: str, engine: Engine
) -> None:
    """0022: grid deliveries and fleet requests; on PostgreSQL, a site's or feeder's limit of at least
    1,380 W. Going back drops both tables and restores the old checks."""
    migrate.upgrade(engine)
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0021")
        conn.commit()
        assert not {"grid_deliveries", "fleet_requests"} & set(inspect(conn).get_table_names())
    assert migrate.upgrade(engine) == "upgraded from 0021"
    assert {"grid_deliveries", "fleet_requests"} <= set(shape(engine))
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn, pytest.raises(IntegrityError):
            conn.exec_driver_sql("INSERT INTO grid_feeders (name, limit_w) VALUES ('F', 1379)")
    migrate.check_current(engine)


def test_0023_adds_held_quotes_used_once_and_going_back_drops_them(url: str, engine: Engine) -> None:
    """0023: quotes held for drivers, a booking's at most once (its booking_id unique); back to 0022
    drops the table alone, and upgrading brings it back."""
    migrate.upgrade(engine)
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0022")
        conn.commit()
        left = set(inspect(conn).get_table_names())
        assert "held_quotes" not in left and {"fleet_requests", "booking_quotes"} <= left
        conn.exec_driver_sql("INSERT INTO drivers (id, name, id_tag) VALUES (1, 'Dee', 'DEE')")
        conn.commit()
    assert migrate.upgrade(engine) == "upgraded from 0022"
    assert "held_quotes" in shape(engine)
    with engine.connect() as conn:
        insp = inspect(conn)
        unique: list[list[str | None]] = [
            list(u["column_names"]) for u in insp.get_unique_constraints("held_quotes")
        ]
        unique += [list(i["column_names"]) for i in insp.get_indexes("held_quotes") if i["unique"]]
        assert ["booking_id"] in unique
    migrate.check_current(engine)


def test_0024_gives_connectors_the_time_they_were_last_reported_available(url: str, engine: Engine) -> None:
    """0024 (on 0023): `connectors.available_at`; going back drops it and keeps the connectors."""
    migrate.upgrade(engine)
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0023")
        conn.commit()
        assert "available_at" not in {c["name"] for c in inspect(conn).get_columns("connectors")}
    assert migrate.upgrade(engine) == "upgraded from 0023"
    assert "available_at" in {c["name"] for c in inspect(engine).get_columns("connectors")}
    migrate.check_current(engine)


def test_0025_gives_connectors_the_time_of_the_report_their_status_came_from(
    url: str, engine: Engine
) -> None:
    """0025 (on 0024): `connectors.status_at`; going back drops it and keeps the connectors."""
    migrate.upgrade(engine)
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0024")
        conn.commit()
        columns = {c["name"] for c in inspect(conn).get_columns("connectors")}
        assert "status_at" not in columns and "available_at" in columns
    assert migrate.upgrade(engine) == "upgraded from 0024"
    assert "status_at" in {c["name"] for c in inspect(engine).get_columns("connectors")}
    migrate.check_current(engine)


def test_0026_adds_drivers_payout_checks_and_the_expired_quotes_index(url: str, engine: Engine) -> None:
    """0026 (on 0025): `driver_kyc`, and the index the sweep finds expired unused quotes by; going
    back drops both and keeps the drivers and quotes."""
    migrate.upgrade(engine)
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0025")
        conn.commit()
        insp = inspect(conn)
        assert "driver_kyc" not in insp.get_table_names() and "held_quotes" in insp.get_table_names()
        assert "ix_held_quotes_unused_expiry" not in {i["name"] for i in insp.get_indexes("held_quotes")}
        conn.exec_driver_sql("INSERT INTO drivers (id, name, id_tag) VALUES (1, 'Dee', 'DEE')")
        conn.commit()
    assert migrate.upgrade(engine) == "upgraded from 0025"
    insp = inspect(engine)
    assert "driver_kyc" in insp.get_table_names()
    assert "ix_held_quotes_unused_expiry" in {i["name"] for i in insp.get_indexes("held_quotes")}
    with engine.begin() as conn, pytest.raises(IntegrityError):
        conn.exec_driver_sql(
            "INSERT INTO driver_kyc (driver_id, status, updated_at) VALUES (1, 'fine', '2026-03-02')"
        )
    migrate.check_current(engine)


def test_0034_keeps_the_sites_house_loads_with_no_time_so_the_next_reading_replaces_them(
    url: str, engine: Engine
) -> None:
    """0034 (on 0033): `grid_sites.house_load_at`. A site's load kept before it has no time, so the
    next reading, however old its stamp, is taken; going back drops the column and keeps the sites."""
    migrate.upgrade(engine)
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0033")
        conn.commit()
        assert "house_load_at" not in {c["name"] for c in inspect(conn).get_columns("grid_sites")}
        conn.exec_driver_sql("INSERT INTO hosts (id, name) VALUES (1, 'Ada')")
        conn.exec_driver_sql(
            "INSERT INTO grid_sites (id, host_id, name, limit_w, house_load_w) "
            "VALUES (1, 1, 'home', 13800, 900)"
        )
        conn.commit()
    assert migrate.upgrade(engine) == "upgraded from 0033"
    migrate.check_current(engine)
    with engine.begin() as conn:
        (site,) = SqlGrid(conn, engine.dialect.name).sites()
        assert (site.house_load_w, site.house_load_at) == (900, None)
        long_ago = datetime(2020, 1, 1, tzinfo=UTC)
        taken, applied = SqlGrid(conn, engine.dialect.name).set_house_load(1, 1_200, long_ago)
        assert applied and (taken.house_load_w, taken.house_load_at) == (1_200, long_ago)
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0033")
        conn.commit()
        assert conn.execute(text("SELECT house_load_w FROM grid_sites WHERE id = 1")).scalar() == 1_200


def test_0036_sells_the_exports_kept_before_it_to_the_grid(url: str, engine: Engine) -> None:
    """0036 (on 0035): `v2g_exports.buyer` and `host_export_buyers`. An export record kept before it
    was sold to the grid buyer, and says so; going back drops both and keeps the records."""
    clock = ManualClock(T0)
    app = build(Config(database_url=url, password_hash="fast"), clock=clock)
    try:
        booking, _ = Site(app, clock).session(500)
    finally:
        app.close()
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0035")
        conn.commit()
        assert "buyer" not in {c["name"] for c in inspect(conn).get_columns("v2g_exports")}
        assert "host_export_buyers" not in inspect(conn).get_table_names()
        assert conn.execute(text("SELECT count(*) FROM v2g_exports")).scalar() == 1
    assert migrate.upgrade(engine) == "upgraded from 0035"
    with engine.connect() as conn:
        row = conn.execute(text("SELECT booking_id, buyer FROM v2g_exports")).one()
        assert tuple(row) == (booking, "grid")
        with pytest.raises(IntegrityError):
            conn.exec_driver_sql(
                "INSERT INTO host_export_buyers (host_id, buyer, set_at) "
                "VALUES (1, 'pool', '2026-03-02 09:00:00+00')"
            )


def test_0038_keeps_overrides_owed_once_more_and_refusals_checked(url: str, engine: Engine) -> None:
    """0038 (on 0036): `booking_overrides.taken_session` and `command_refusals`. An override kept
    before it is owed to the session still running on it; going back drops both, keeping the
    override."""
    clock = ManualClock(T0)
    app = build(Config(database_url=url, password_hash="fast"), clock=clock)
    try:
        charger = add_charger(app, "CP1")
        dee = app.marketplace.add_driver("Dee", "DEE").driver_id
        booking = app.bookings.book(BookRequest(dee, charger, 1, 60, 10_000, override_smart_charging=True))
        session = app.charging.start("CP1", 1, "DEE", 0, clock.now()).transaction_id
        app.smart.override_taken(session)
        app.smart.override_refused(session)
    finally:
        app.close()
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0036")
        conn.commit()
        assert "taken_session" not in {c["name"] for c in inspect(conn).get_columns("booking_overrides")}
        assert "command_refusals" not in inspect(conn).get_table_names()
        assert conn.execute(text("SELECT count(*) FROM booking_overrides")).scalar() == 1
    assert migrate.upgrade(engine) == "upgraded from 0036"
    with engine.connect() as conn:
        row = conn.execute(text("SELECT booking_id, taken_session FROM booking_overrides")).one()
        assert tuple(row) == (booking.booking_id, None)
        with pytest.raises(IntegrityError):
            conn.exec_driver_sql(
                "INSERT INTO command_refusals (session_id, kind, count, last_at) "
                f"VALUES ({session}, 'stop', 1, '2026-03-02 09:00:00+00')"
            )
    app = build(Config(database_url=url, password_hash="fast"), clock=clock)
    try:
        assert [s for s, _ in commands_owed_overrides(app)] == [session]
    finally:
        app.close()


def commands_owed_overrides(app: App) -> list[tuple[int, str]]:
    with app.store.reading() as tx:
        return list(tx.smart.overrides_owed())


def test_0039_counts_unanswered_sends_apart_and_going_back_keeps_the_refusals(
    url: str, engine: Engine
) -> None:
    """0039 (on 0038): `command_refusals.unanswered`. A refusal kept before it has none; a record of
    unanswered sends only is allowed after it, and going back drops those, keeping the refusals."""
    clock = ManualClock(T0)
    app = build(Config(database_url=url, password_hash="fast"), clock=clock)
    try:
        charger = add_charger(app, "CP1")
        dee = app.marketplace.add_driver("Dee", "DEE").driver_id
        app.bookings.book(BookRequest(dee, charger, 1, 60, 10_000, override_smart_charging=True))
        session = app.charging.start("CP1", 1, "DEE", 0, clock.now()).transaction_id
        app.smart.override_refused(session)
    finally:
        app.close()
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0038")
        conn.commit()
        assert "unanswered" not in {c["name"] for c in inspect(conn).get_columns("command_refusals")}
    assert migrate.upgrade(engine) == "upgraded from 0038"
    with engine.connect() as conn:
        row = conn.execute(text("SELECT kind, count, unanswered FROM command_refusals")).one()
        assert tuple(row) == ("override", 1, 0)
        conn.exec_driver_sql(
            "INSERT INTO command_refusals (session_id, kind, count, unanswered, last_at) "
            f"VALUES ({session}, 'export', 0, 2, '2026-03-02 09:00:00+00')"
        )
        conn.commit()
        with pytest.raises(IntegrityError), conn.begin_nested():
            conn.exec_driver_sql("UPDATE command_refusals SET unanswered = 0 WHERE kind = 'export'")
        conn.rollback()
        command.downgrade(migrate.alembic_config(conn), "0038")
        conn.commit()
        assert [tuple(r) for r in conn.execute(text("SELECT kind, count FROM command_refusals"))] == [
            ("override", 1)
        ]


def at_0040(url: str, engine: Engine) -> None:
    """A database made at the head, then taken back to 0040 (before the listings' indexes)."""
    build(Config(database_url=url, password_hash="fast"), clock=ManualClock(T0)).close()
    with engine.connect() as conn:
        command.downgrade(migrate.alembic_config(conn), "0040")
        conn.commit()


@pytest.mark.postgres
def test_0041_builds_its_indexes_without_holding_the_writers(postgres_url: str) -> None:
    """0041 (on 0040): the bookings listings' indexes. On PostgreSQL, while it waits for a
    transaction writing `chargers` to end, a new writer must still get in (a plain CREATE INDEX
    queues a SHARE lock that every later writer waits behind); both indexes end valid."""
    engine = make_engine(postgres_url)
    try:
        app = build(Config(database_url=postgres_url, password_hash="fast"), clock=ManualClock(T0))
        try:
            add_charger(app, "CP1")
        finally:
            app.close()
        with engine.connect() as conn:
            command.downgrade(migrate.alembic_config(conn), "0040")
            conn.commit()
        with engine.connect() as writing:
            writing.exec_driver_sql("UPDATE chargers SET title = 'held' WHERE charge_point_id = 'CP1'")
            outcome: list[str] = []
            migrating = threading.Thread(target=lambda: outcome.append(migrate.upgrade(engine)))
            migrating.start()
            deadline = datetime.now(UTC).timestamp() + 30
            while not lock_waits(engine):
                assert migrating.is_alive(), f"the migration ended without waiting: {outcome}"
                assert datetime.now(UTC).timestamp() < deadline, "the migration never waited on the writer"
            with engine.connect() as later:
                # Refused at once if a lock request ahead of it (the migration's) conflicts.
                later.exec_driver_sql("LOCK TABLE chargers IN ROW EXCLUSIVE MODE NOWAIT")
                later.rollback()
            writing.commit()
            migrating.join(60)
        assert outcome == ["upgraded from 0040"]
        with engine.connect() as conn:
            valid = conn.execute(
                text(
                    "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE c.relname IN ('ix_chargers_host_id', 'ix_bookings_driver_id') ORDER BY c.relname"
                )
            ).all()
        assert [tuple(r) for r in valid] == [("ix_bookings_driver_id", True), ("ix_chargers_host_id", True)]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_0041_runs_while_another_process_waits_for_the_schema_lock(postgres_url: str) -> None:
    """Two processes start on a database at 0040: one migrates, the other waits for the schema
    lock. A process blocked in `pg_advisory_lock` would hold a snapshot, which the migration's
    CREATE INDEX CONCURRENTLY waits to see end: a deadlock. The waiter must hold none."""
    engine = make_engine(postgres_url)
    waiter_engine = make_engine(postgres_url)
    try:
        at_0040(postgres_url, engine)
        tried = threading.Event()

        @event.listens_for(waiter_engine, "after_cursor_execute")
        def after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if "advisory_lock" in statement:
                tried.set()

        with engine.connect() as migrating:
            migrating.execute(text("SELECT pg_advisory_lock(:key)"), {"key": migrate.ADVISORY_KEY})
            migrating.commit()
            outcome: list[str] = []
            waiter = threading.Thread(target=lambda: outcome.append(migrate.upgrade(waiter_engine)))
            waiter.start()
            deadline = datetime.now(UTC).timestamp() + 30
            # Until the waiter has tried the lock: it either waits on it or has been refused once.
            while not (tried.is_set() or lock_waits(engine)):
                assert waiter.is_alive(), f"the waiter ended without the lock: {outcome}"
                assert datetime.now(UTC).timestamp() < deadline, "the waiter never tried the lock"
            command.upgrade(migrate.alembic_config(migrating), "head")
            migrating.commit()
            migrating.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": migrate.ADVISORY_KEY})
            migrating.commit()
            waiter.join(60)
        assert outcome == ["current"]
    finally:
        waiter_engine.dispose()
        engine.dispose()


def waited_s(engine: Engine, statement: str) -> float | None:
    """How long, by the server's clock, a statement starting with `statement` has been waiting on a
    lock; None when none is."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT extract(epoch FROM clock_timestamp() - query_start)::float FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE :q"
            ),
            {"q": statement + "%"},
        ).scalar()


@pytest.mark.postgres
def test_0041_waits_for_a_long_reading_of_another_table_rather_than_failing(postgres_url: str) -> None:
    """A reading that holds a snapshot (a store `reading()` is REPEATABLE READ; pg_dump is one) and
    touches neither table: CREATE INDEX CONCURRENTLY waits for every older snapshot. Under the
    migration's lock timeout it would give up, and the server could not start while the reading
    lasts; it must wait past that timeout (by the server's clock) and finish once the reading ends."""
    engine = make_engine(postgres_url)
    try:
        at_0040(postgres_url, engine)
        outcome: list[str] = []
        with engine.connect() as reading:
            reading.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
            reading.exec_driver_sql("SELECT count(*) FROM alembic_version").all()
            migrating = threading.Thread(
                target=lambda: outcome.append(migrate.upgrade(engine, lock_timeout_s=1))
            )
            migrating.start()
            try:
                deadline = datetime.now(UTC).timestamp() + 60
                while (waited_s(engine, "CREATE INDEX CONCURRENTLY") or 0.0) < 3.0:
                    assert migrating.is_alive(), f"the migration gave up: {outcome}"
                    assert datetime.now(UTC).timestamp() < deadline, "the migration never waited"
            finally:
                reading.rollback()
            migrating.join(60)
        assert outcome == ["upgraded from 0040"]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_0041_rebuilds_an_index_a_build_cut_short_left_invalid_and_keeps_a_valid_one(
    postgres_url: str,
) -> None:
    """Run again after a concurrent build was cut short, 0041 finds an invalid index under one name
    (dropped and built again) and a valid one under the other (kept as it is)."""
    engine = make_engine(postgres_url)
    names = "('ix_chargers_host_id', 'ix_bookings_driver_id')"
    try:
        app = build(Config(database_url=postgres_url, password_hash="fast"), clock=ManualClock(T0))
        app.close()
        with engine.connect() as conn:
            command.downgrade(migrate.alembic_config(conn), "0040")
            conn.exec_driver_sql("CREATE INDEX ix_chargers_host_id ON chargers (host_id)")
            conn.exec_driver_sql("CREATE INDEX ix_bookings_driver_id ON bookings (driver_id)")
            conn.exec_driver_sql(  # as a build cut short leaves it
                "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_bookings_driver_id'::regclass"
            )
            conn.commit()
            before: dict[str, int] = dict(
                conn.execute(text(f"SELECT relname, oid FROM pg_class WHERE relname IN {names}")).all()
            )
        assert migrate.upgrade(engine) == "upgraded from 0040"
        with engine.connect() as conn:
            after: dict[str, int] = dict(
                conn.execute(text(f"SELECT relname, oid FROM pg_class WHERE relname IN {names}")).all()
            )
            valid = conn.execute(
                text(f"SELECT bool_and(indisvalid) FROM pg_index WHERE indexrelid::regclass::text IN {names}")
            ).scalar()
        assert after["ix_chargers_host_id"] == before["ix_chargers_host_id"]
        assert after["ix_bookings_driver_id"] != before["ix_bookings_driver_id"]
        assert valid is True
    finally:
        engine.dispose()
