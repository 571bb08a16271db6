"""Schema versions under Alembic: fresh databases, databases made before migrations, restarts that
change nothing, and several processes starting at once on an empty PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import IntegrityError

from chargeshare.adapters.sql import migrate
from chargeshare.adapters.sql.store import make_engine


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
