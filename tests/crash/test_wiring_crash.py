"""A charger's report raising its wiring, kept by a process that dies before the grid decides again
(`wiring-committed`), still gets the charger its new limits: the report's commit owes it a decision,
so the housekeeping sweep of the process that recovers tells it.

The report is made by a real process of its own (no server: the report service on the database, as
`serve` calls it on a Phases read), killed at the failpoint; the test process prepares the world and
runs the recovery on the same database, on a clock of its own."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

from chargeshare.bootstrap import App, build
from chargeshare.failpoints import EXIT_CODE
from chargeshare.ocpp.phases import Wiring
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import GridLimitsDue
from chargeshare.services.grid import RESEND_OWED_AFTER
from tests.conftest import add_charger
from tests.crash.harness import CONFIG, EXIT_WITHIN_S, ROOT, SERVER_ENV

CP_ID = "WIRING-CP-1"

# The report as `serve` makes it on a boot's Phases read: three phases, where nothing was said before.
REPORT = """
import sys
from chargeshare.bootstrap import Config, build
app = build(Config.from_env({"CHARGESHARE_DATABASE_URL": sys.argv[1]}), create_schema=False)
app.reports.phases_learned(sys.argv[2], {0: 3})
"""


def charging_with_room(app: App, clock: ManualClock) -> None:
    """An 11 kW charger alone on a 40 kW site, charging: its whole rating in W on any wiring, so only
    its profiles in A change with its phases. It said nothing of them (one phase), and took its limits."""
    charger_id = add_charger(app, CP_ID, power_w=11_000)
    site = app.grid.add_site(app.marketplace.add_host("Hilda"), "home", 40_000)
    app.grid.place(charger_id, site.site_id)
    assert app.reports.phases_learned(CP_ID, Wiring())
    driver = app.marketplace.add_driver("Dora", "TAG1").driver_id
    app.bookings.book(BookRequest(driver, charger_id, 1, 60, 10_000))
    app.charging.start(CP_ID, 1, "TAG1", 0, clock.now())
    due = app.grid.limits_due(CP_ID)
    assert due is not None and due.limits_w == ((1, 11_000),)
    app.grid.limits_delivered(CP_ID, due.decision)


def report_and_die(database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGESHARE_")}
    env.update(SERVER_ENV, PYTHONPATH=str(ROOT), CHARGESHARE_FAILPOINT="wiring-committed")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(REPORT), database_url, CP_ID],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=EXIT_WITHIN_S,
        check=False,
    )
    said = done.stdout + done.stderr
    assert done.returncode == EXIT_CODE, said
    assert "failpoint wiring-committed: exiting" in said, said


def test_a_wiring_report_kept_by_a_process_that_died_still_has_its_charger_decided_for(
    database_url: str,
) -> None:
    clock = ManualClock(datetime.now(UTC))
    app = build(dataclasses.replace(CONFIG, database_url=database_url), clock=clock)
    try:
        charging_with_room(app, clock)
        before = app.grid.limits_due(CP_ID)
        assert before is not None
        report_and_die(database_url)
        # Kept: the charger saying it again changes nothing, so only what the commit left can recover.
        assert app.reports.phases(CP_ID) == Wiring({0: 3})
        assert not app.reports.phases_learned(CP_ID, Wiring({0: 3}))
        heard: list[GridLimitsDue] = []
        app.bus.subscribe(GridLimitsDue, heard.append)
        clock.advance(2 * RESEND_OWED_AFTER.total_seconds())
        assert not app.housekeeping.sweep(payments=False).failed
        assert [(e.charge_point_id, e.limits_w) for e in heard] == [(CP_ID, before.limits_w)]
        assert heard[0].decision > before.decision
        app.grid.limits_delivered(CP_ID, heard[0].decision)
        heard.clear()
        clock.advance(2 * RESEND_OWED_AFTER.total_seconds())
        app.housekeeping.sweep(payments=False)
        assert heard == []  # taken: told once
    finally:
        app.close()
