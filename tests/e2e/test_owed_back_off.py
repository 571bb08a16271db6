"""Commands owed to a session's charger until it takes them, over real loopback WebSockets against
the `ocpp` library's 2.1 charge point: a charger refusing its V2G export is asked again by the sweep
only on the back-off (each refusal doubling the wait), and accepting clears it; a driver overriding
a running session has the charger told at once, and asked again on the same back-off until it takes
the override. The clock is moved by hand and each sweep round run by the test, so what is asked
when is decided by the clock, not by how loaded the machine is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from chargeshare.bootstrap import App, build
from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.command_backoff import Backoff, OwedKind, Refusals
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp.scripts import Order
from chargeshare.services.booking import BookRequest
from chargeshare.services.owed_commands import owed_rows
from tests.clocks import HandClock
from tests.conftest import add_charger
from tests.e2e.conftest import as_serve_runs, serving
from tests.e2e.ocpp_clients import Script, _running, boot21
from tests.e2e.test_ocpp21_v2g import BidirectionalCp21, event, readings, whole
from tests.e2e.transactions import book
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

RESEND_S = 60  # the rules' command_resend_after_s: owed this long before the sweep asks


@dataclass
class Swept:
    app: App
    clock: HandClock
    registry: ChargerRegistry
    ws: str


@pytest.fixture
async def swept(tmp_path: Path) -> AsyncIterator[Swept]:
    config = as_serve_runs(f"sqlite:///{tmp_path / 'cs.db'}")
    rules = replace(
        config.rules,
        command_resend_after_s=RESEND_S,
        command_backoff_first_s=60,
        command_backoff_cap_s=600,
        command_refusal_limit=4,
    )
    # Near the wall clock: the library charge point stamps its frames with it.
    clock = HandClock(datetime.now(UTC).replace(microsecond=0))
    app = build(replace(config, rules=rules), clock=clock)
    app.v2g.windows = whole
    registry = ChargerRegistry(app, call_timeout_s=5)
    async with serving(app, registry) as s:
        yield Swept(app, clock, registry, s.ws)


def refusals(app: App, kind: OwedKind, session_id: int) -> Refusals | None:
    with app.store.reading() as tx:
        return tx.refusals.of(kind, [session_id]).get(session_id)


def session_of(app: App, booking_id: int) -> int:
    with app.store.reading() as tx:
        session = tx.sessions.for_booking(booking_id)
    assert session is not None
    return session.session_id


async def sweep_at(s: Swept, at: datetime) -> list[str]:
    """One round of the sweep with the clock moved on to `at`: the chargers it asked again."""
    assert at >= s.clock.now()
    s.clock.advance((at - s.clock.now()).total_seconds())
    return await s.registry.resend_owed()


async def refused(app: App, kind: OwedKind, session_id: int, count: int) -> Refusals:
    """Once the charger's `count`-th refusal is recorded."""
    await eventually(
        lambda: (r := refusals(app, kind, session_id)) is not None and r.count == count, "refusal"
    )
    found = refusals(app, kind, session_id)
    assert found is not None
    return found


async def test_a_refused_export_is_asked_again_only_on_its_back_off_until_taken(swept: Swept) -> None:
    app = swept.app
    booking = book(app, "V21", "TAGV", price=40)
    app.v2g.set_terms(Principal(0, Role.DRIVER, driver_id=booking.driver_id), booking.booking_id, 30, 40)
    script = Script(status={"SetChargingProfile": "Rejected"})
    async with connect(f"{swept.ws}/V21", subprotocols=["ocpp2.1"]) as ws:  # type: ignore[list-item]
        cp = BidirectionalCp21("V21", ws)
        cp.script = script
        async with _running(cp):
            assert (await boot21(cp)).status == "Accepted"
            await cp.call(
                event(
                    "Started",
                    0,
                    "Authorized",
                    readings(500, 10_000, 80, "Transaction.Begin"),
                    evse={"id": 1, "connector_id": 1},
                    id_token={"id_token": "TAGV", "type": "ISO14443"},
                )
            )
            session = session_of(app, booking.booking_id)
            first = await refused(app, OwedKind.EXPORT, session, 1)
            t0 = first.last_at
            assert first == Refusals(1, t0, t0 + timedelta(seconds=60))
            asked = len(script.asked("SetChargingProfile"))
            # Waiting out its 60 s, then owed the sweep's own 60 s: asked at t0 + 120 s, no sooner.
            for at_s in (0, 59, 60, 119):
                assert await sweep_at(swept, t0 + timedelta(seconds=at_s)) == []
            assert len(script.asked("SetChargingProfile")) == asked
            assert await sweep_at(swept, t0 + timedelta(seconds=120)) == ["V21"]
            second = await refused(app, OwedKind.EXPORT, session, 2)
            t1 = t0 + timedelta(seconds=120)
            assert second == Refusals(2, t1, t1 + timedelta(seconds=120))  # the wait doubled
            (row,) = owed_rows(app.store, app.clock.now())
            assert (row.kind, row.state, row.refusals, row.retry_at) == (
                "export",
                "waiting",
                2,
                second.retry_at,
            )
            for at_s in (60, 119, 120, 179):
                assert await sweep_at(swept, t1 + timedelta(seconds=at_s)) == []
            script.status["SetChargingProfile"] = "Accepted"
            assert await sweep_at(swept, t1 + timedelta(seconds=180)) == ["V21"]
            await eventually(lambda: owed_rows(app.store, app.clock.now()) == [], "the export taken")
            assert refusals(app, OwedKind.EXPORT, session) is None  # accepting cleared the back-off
            assert len(script.asked("SetChargingProfile")) == asked + 2
            assert len(script.asked("NotifyAllowedEnergyTransfer")) == 3
            assert await sweep_at(swept, t1 + timedelta(seconds=3_600)) == []


async def test_a_driver_overriding_a_running_session_has_the_charger_told_at_once_and_again(
    swept: Swept,
) -> None:
    app = swept.app
    booking = book(app, "V21", "TAGO", price=40)
    script = Script(status={"SetChargingProfile": "Rejected"})
    async with connect(f"{swept.ws}/V21", subprotocols=["ocpp2.1"]) as ws:  # type: ignore[list-item]
        cp = BidirectionalCp21("V21", ws)
        cp.script = script
        async with _running(cp):
            assert (await boot21(cp)).status == "Accepted"
            await cp.call(
                event(
                    "Started",
                    0,
                    "Authorized",
                    readings(500, 10_000, 80, "Transaction.Begin"),
                    evse={"id": 1, "connector_id": 1},
                    id_token={"id_token": "TAGO", "type": "ISO14443"},
                )
            )
            session = session_of(app, booking.booking_id)
            assert script.asked("SetChargingProfile") == []  # no override, no V2G: nothing owed
            driver = Principal(0, Role.DRIVER, driver_id=booking.driver_id)
            assert app.smart.override(driver, booking.booking_id) is True
            told = await refused(app, OwedKind.OVERRIDE, session, 1)
            (profile,) = [p["charging_profile"] for p in script.asked("SetChargingProfile")]
            assert (
                profile["charging_profile_purpose"] == "TxProfile" and profile["transaction_id"] == "TX-V2G"
            )
            t0 = told.last_at
            for at_s in (59, 60, 119):  # its turn at 60 s, then owed the sweep's own 60 s
                assert await sweep_at(swept, t0 + timedelta(seconds=at_s)) == []
            script.status["SetChargingProfile"] = "Accepted"
            assert await sweep_at(swept, t0 + timedelta(seconds=120)) == ["V21"]
            await eventually(lambda: owed_rows(app.store, app.clock.now()) == [], "the override taken")
            assert refusals(app, OwedKind.OVERRIDE, session) is None
            assert len(script.asked("SetChargingProfile")) == 2
            await cp.call(
                event("Ended", 1, "EVCommunicationLost", readings(700, 10_000, 79, "Transaction.End"))
            )
            await eventually(lambda: not app.smart.session_running(session), "the session ended")
            # Overriding is over with the session; nothing is owed or sent after it.
            assert await sweep_at(swept, t0 + timedelta(seconds=3_600)) == []
            assert len(script.asked("SetChargingProfile")) == 2


async def test_a_sweep_for_one_due_command_does_not_send_another_still_waiting(swept: Swept) -> None:
    """The export's turn comes while the same session's override waits its own: the sweep asks the
    charger for the export alone, so its other dues never bypass a back-off."""
    app = swept.app
    charger = add_charger(app, "V21", price=40)
    dee = app.marketplace.add_driver("Dee", "TAGB").driver_id
    booking = app.bookings.book(BookRequest(dee, charger, 1, 60, 10_000, override_smart_charging=True))
    app.v2g.set_terms(Principal(0, Role.DRIVER, driver_id=dee), booking.booking_id, 30, 40)
    script = Script(status={"SetChargingProfile": "Rejected", "NotifyAllowedEnergyTransfer": "Rejected"})
    owed_calls: list[frozenset[tuple[str, int]] | None] = []
    owed = swept.registry.policy.owed

    def spied(cp_id: str, *, only: frozenset[tuple[str, int]] | None = None) -> Order:
        owed_calls.append(only)
        return owed(cp_id, only=only)

    swept.registry.policy.owed = spied  # type: ignore[method-assign]
    async with connect(f"{swept.ws}/V21", subprotocols=["ocpp2.1"]) as ws:  # type: ignore[list-item]
        cp = BidirectionalCp21("V21", ws)
        cp.script = script
        async with _running(cp):
            assert (await boot21(cp)).status == "Accepted"
            await cp.call(
                event(
                    "Started",
                    0,
                    "Authorized",
                    readings(500, 10_000, 80, "Transaction.Begin"),
                    evse={"id": 1, "connector_id": 1},
                    id_token={"id_token": "TAGB", "type": "ISO14443"},
                )
            )
            session = session_of(app, booking.booking_id)
            export = await refused(app, OwedKind.EXPORT, session, 1)
            await refused(app, OwedKind.OVERRIDE, session, 1)
            t0 = export.last_at
            with app.store.transaction() as tx:  # the override waits an hour (as after more refusals)
                tx.refusals.refused(session, OwedKind.OVERRIDE, t0, Backoff(3_600, 3_600, 8))
            owed_calls.clear()
            assert await sweep_at(swept, t0 + timedelta(seconds=60)) == []
            assert await sweep_at(swept, t0 + timedelta(seconds=120)) == ["V21"]
            assert owed_calls == [frozenset({("export", session)})]
            await refused(app, OwedKind.EXPORT, session, 2)
