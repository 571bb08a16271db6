"""Kill the real server at each boundary of the money path, restart it on the same database, let the
clients send again what went unanswered, and check that nothing was lost, doubled or left stuck.

Each test: the server starts with one failpoint armed; a driver's app (HTTP) and a charger (OCPP 1.6J
over a WebSocket) drive the flow until the process exits with 86 at that point; the test looks at what
the crash left (the window the failpoint names); the server restarts without it; the clients send
again what was not answered; once the payments outbox is worked off, every invariant must hold, the
provider's books must equal the ledger, and the booking must have ended as recovery decides.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from ocpp.v16 import call as call16
from ocpp.v16.datatypes import MeterValue, SampledValue

from chargeshare.domain import ledger
from chargeshare.domain.accounts import KycStatus
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.ledger import EntryKind
from chargeshare.domain.money import split_fee
from chargeshare.domain.session import SessionStatus
from chargeshare.ocpp import V16
from chargeshare.services.booking import BookRequest
from tests.api_helpers import Caller
from tests.crash.harness import (
    ANSWER_WITHIN_S,
    RECOVER_WITHIN_S,
    Charger,
    Crash,
    Server,
    World,
    bookings,
    charger,
    claims_lapsed,
    entries,
    failing,
    payment_steps,
    poll,
    provider,
    worked_off,
)
from tests.e2e.ocpp_clients import now

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

BOOKED_WH = 10_000
HOLD = 440  # 10 kWh plus 10% headroom at 40p
METER_START, METER_STOP = 1_000, 6_000
COST = 200  # 5 kWh at 40p


def client(server: Server, caller: Caller) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.http, headers=caller.headers, timeout=ANSWER_WITHIN_S)


def booking_body(world: World, starts_at: datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "charger_id": world.charger_id,
        "connector_no": 1,
        "minutes": 60,
        "max_energy_wh": BOOKED_WH,
    }
    if starts_at is not None:
        body["starts_at"] = starts_at.isoformat()
    return body


def tomorrow() -> datetime:
    """Far enough ahead that the charger is not asked to reserve and cancelling costs nothing."""
    return (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)


async def settled_bookings(http: httpx.AsyncClient) -> list[str]:
    """The driver's app after a request went unanswered: it looks at its bookings until none is
    waiting for its card hold any more; their statuses, oldest first."""

    async def settled() -> list[str] | None:
        r = await http.get("/bookings")
        assert r.status_code == 200, r.text
        mine = sorted(r.json(), key=lambda b: b["id"])
        statuses = [b["status"] for b in mine]
        return None if "requested" in statuses else statuses

    return await poll(settled, "the driver's booking to leave 'requested'", RECOVER_WITHIN_S)


async def book_now(http: httpx.AsyncClient, world: World) -> int:
    r = await http.post("/bookings", json=booking_body(world))
    assert r.status_code == 201 and r.json()["status"] == "confirmed", r.text
    booking_id: int = r.json()["id"]
    return booking_id


async def charge(cp: Charger) -> int:
    """Plug in and charge on the driver's booking; the transaction id."""
    started = await cp.must(
        call16.StartTransaction(connector_id=1, id_tag=World.ID_TAG, meter_start=METER_START, timestamp=now())
    )
    assert started.id_tag_info["status"] == "Accepted"
    await cp.must(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
    reading = MeterValue(timestamp=now(), sampled_value=[SampledValue(value=str(METER_START + 2_500))])
    await cp.must(
        call16.MeterValues(connector_id=1, transaction_id=started.transaction_id, meter_value=[reading])
    )
    transaction_id: int = started.transaction_id
    return transaction_id


def stop_of(transaction_id: int) -> call16.StopTransaction:
    """One StopTransaction, kept by the charger and sent again as it was while unanswered."""
    return call16.StopTransaction(
        meter_stop=METER_STOP, timestamp=now(), transaction_id=transaction_id, id_tag=World.ID_TAG
    )


def steps_of(world: World, booking_id: int) -> list[tuple[str, str]]:
    return [(i.step, i.status) for i in payment_steps(world.app) if i.booking_id == booking_id]


def kinds_of(world: World, booking_id: int) -> list[str]:
    """The kinds of the booking's journal entries, sorted: how many of each, whatever their order."""
    return sorted(e.kind.value for e in entries(world.app) if e.booking_id == booking_id)


def assert_billed_once(world: World, booking_id: int, transaction_id: int) -> None:
    """The session billed on its meter, captured once at the provider and once in the ledger."""
    app = world.app
    (booking,) = (b for b in bookings(app) if b.booking_id == booking_id)
    assert booking.status is BookingStatus.COMPLETED
    with app.store.reading() as tx:
        session = tx.sessions.get(transaction_id)
    assert session is not None and session.status is SessionStatus.STOPPED
    assert (session.billed_wh, session.cost) == (METER_STOP - METER_START, COST)
    assert steps_of(world, booking_id) == [("hold", "done"), ("capture", "done")]
    assert kinds_of(world, booking_id) == ["capture", "hold", "processor_fee", "split"]
    assert booking.payment_ref is not None
    hold = provider(app).holds[booking.payment_ref]
    assert (hold.state, hold.amount, hold.captured) == ("captured", HOLD, COST)
    assert provider(app).total_captured == COST
    assert failing(app) == []


# ---- placing the hold -----------------------------------------------------------------------------


@pytest.mark.parametrize("failpoint", ["booking-committed", "hold-authorized"])
async def test_a_booking_whose_request_died_is_failed_its_hold_voided_and_the_slot_freed(
    crash: Crash, failpoint: str
) -> None:
    world, server = await crash.start(failpoint), crash.server
    body = booking_body(world, tomorrow())
    async with client(server, world.driver) as http:
        with pytest.raises(httpx.TransportError):
            await http.post("/bookings", json=body)
    await server.died_at(failpoint)

    # The crash's window: the booking waits for its hold, whose placement is recorded and claimed by
    # the dead process; the provider was not asked yet, or authorised a hold the ledger lacks.
    (first,) = bookings(world.app)
    assert first.status is BookingStatus.REQUESTED
    assert steps_of(world, first.booking_id) == [("hold", "pending")]
    assert kinds_of(world, first.booking_id) == []
    made_before = provider(world.app).holds
    if failpoint == "booking-committed":
        assert made_before == {}
    else:
        assert [(h.state, h.amount) for h in made_before.values()] == [("authorized", HOLD)]
        assert any(f.startswith("provider_holds_match_ledger") for f in failing(world.app, final=False))

    await claims_lapsed(world.app)
    await server.restart()
    async with client(server, world.driver) as http:
        # No answer came, and the API takes no idempotency key: the app looks at its bookings, finds
        # the one in flight failed (recovery took the placement over), and books again.
        assert await settled_bookings(http) == ["failed"]
        again = await http.post("/bookings", json=body)
        assert again.status_code == 201 and again.json()["status"] == "confirmed", again.text
        second = again.json()["id"]
        cancelled = await http.post(f"/bookings/{second}/cancel")  # winds the run down
        assert cancelled.status_code == 200 and cancelled.json()["fee"] == 0, cancelled.text
    await worked_off(world.app)

    first_now, second_now = bookings(world.app)
    assert (first_now.status, second_now.status) == (BookingStatus.FAILED, BookingStatus.CANCELLED)
    # The placement was voided in its own step: the provider's authorisation (made before the crash,
    # or by recovery replaying the hold's idempotency key) released, nothing in the ledger for it.
    assert steps_of(world, first.booking_id) == [("hold", "done")]
    assert kinds_of(world, first.booking_id) == []
    assert steps_of(world, second) == [("hold", "done"), ("release", "done")]
    assert kinds_of(world, second) == ["hold", "void"]
    holds = provider(world.app).holds
    assert [(h.customer, h.state, h.amount) for h in holds.values()] == [
        (f"driver:{world.driver.did}", "released", HOLD)
    ] * 2
    if failpoint == "hold-authorized":
        (reference,) = made_before
        assert holds[reference].state == "released"  # the very authorisation made before the crash
    assert second_now.payment_ref is not None and second_now.payment_ref not in made_before
    assert provider(world.app).total_captured == 0
    assert failing(world.app) == []


IDEMPOTENCY_KEY = {"Idempotency-Key": "app-attempt-1"}


async def test_a_booking_confirmed_but_unanswered_is_found_again_by_its_idempotency_key(crash: Crash) -> None:
    world, server = await crash.start("booking-confirmed"), crash.server
    body = booking_body(world, tomorrow())
    async with client(server, world.driver) as http:
        with pytest.raises(httpx.TransportError):
            await http.post("/bookings", json=body, headers=IDEMPOTENCY_KEY)
    await server.died_at("booking-confirmed")
    (first,) = bookings(world.app)
    assert first.status is BookingStatus.CONFIRMED  # made and held; the app never heard

    await server.restart()
    async with client(server, world.driver) as http:
        again = await http.post("/bookings", json=body, headers=IDEMPOTENCY_KEY)
        assert again.status_code == 201, again.text
        assert (again.json()["id"], again.json()["status"]) == (first.booking_id, "confirmed")
        # The same copy without its key is a new request, refused by the app's own booking.
        plain = await http.post("/bookings", json=body)
        assert plain.status_code == 409 and plain.json()["error"] == "booking_conflict", plain.text
    assert [b.booking_id for b in bookings(world.app)] == [first.booking_id]
    assert [(h.state, h.amount) for h in provider(world.app).holds.values()] == [("authorized", HOLD)]
    assert kinds_of(world, first.booking_id) == ["hold"]
    assert failing(world.app, final=False) == []


async def test_a_booking_with_a_held_quote_sent_again_after_a_crash_is_not_told_quote_used(
    crash: Crash,
) -> None:
    world, server = await crash.start("booking-confirmed"), crash.server
    body = booking_body(world, tomorrow())
    async with client(server, world.driver) as http:
        held = await http.post(
            f"/chargers/{world.charger_id}/quotes",
            json={"starts_at": body["starts_at"], "minutes": body["minutes"]},
        )
        assert held.status_code == 201, held.text
        body["quote_id"] = held.json()["quote_id"]
        with pytest.raises(httpx.TransportError):
            await http.post("/bookings", json=body, headers=IDEMPOTENCY_KEY)
    await server.died_at("booking-confirmed")
    (first,) = bookings(world.app)
    assert first.status is BookingStatus.CONFIRMED  # made at the quote, which it used; never answered

    await server.restart()
    async with client(server, world.driver) as http:
        again = await http.post("/bookings", json=body, headers=IDEMPOTENCY_KEY)
        assert again.status_code == 201, again.text
        assert (again.json()["id"], again.json()["price_per_kwh"]) == (
            first.booking_id,
            held.json()["price_per_kwh"],
        )
        # Another attempt under another key is a new request: the quote is spent.
        other = await http.post("/bookings", json=body, headers={"Idempotency-Key": "app-attempt-2"})
        assert other.status_code == 409 and other.json()["error"] == "quote_used", other.text
    assert [b.booking_id for b in bookings(world.app)] == [first.booking_id]
    assert failing(world.app, final=False) == []


async def test_a_booking_sent_again_while_its_hold_is_unplaced_waits_then_answers_as_recovery_decided(
    crash: Crash,
) -> None:
    world, server = await crash.start("booking-committed"), crash.server
    body = booking_body(world, tomorrow())
    async with client(server, world.driver) as http:
        with pytest.raises(httpx.TransportError):
            await http.post("/bookings", json=body, headers=IDEMPOTENCY_KEY)
    await server.died_at("booking-committed")

    await server.restart()
    async with client(server, world.driver) as http:
        # Until the dead request's claim on the placement lapses, the copy is told to come back.
        waiting = await http.post("/bookings", json=body, headers=IDEMPOTENCY_KEY)
        if waiting.status_code == 409:
            assert waiting.json()["error"] == "request_in_progress", waiting.text
            assert float(waiting.headers["Retry-After"]) > 0

        async def answered() -> httpx.Response | None:
            r = await http.post("/bookings", json=body, headers=IDEMPOTENCY_KEY)
            return None if r.status_code == 409 else r

        final = await poll(answered, "recovery to decide the placement", RECOVER_WITHIN_S)
        assert final.status_code == 503 and final.json()["error"] == "payment_unavailable", final.text
        assert (await settled_bookings(http)) == ["failed"]
    await worked_off(world.app)
    assert provider(world.app).open_authorisations() == {}
    assert failing(world.app) == []


# ---- stopping and capturing ---------------------------------------------------------------------


async def test_a_stop_committed_but_unanswered_is_billed_once_when_the_charger_sends_it_again(
    crash: Crash,
) -> None:
    world, server = await crash.start("stop-committed"), crash.server
    async with charger(server, World.CP_ID) as cp, client(server, world.driver) as http:
        booking_id = await book_now(http, world)
        transaction_id = await charge(cp)
        stop = stop_of(transaction_id)
        assert await cp.send(stop) is None  # the server died before it answered
    await server.died_at("stop-committed")

    # The crash's window: the stop and its capture step committed together; nothing captured yet.
    with world.app.store.reading() as tx:
        session = tx.sessions.get(transaction_id)
    assert session is not None and session.status is SessionStatus.STOPPED
    assert steps_of(world, booking_id) == [("hold", "done"), ("capture", "pending")]
    assert provider(world.app).total_captured == 0

    await server.restart()
    async with charger(server, World.CP_ID) as cp:
        answer = await cp.must(stop)  # the charger's queued stop, as it was
        assert answer.id_tag_info["status"] == "Accepted"
        await cp.must(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
    await worked_off(world.app)
    assert_billed_once(world, booking_id, transaction_id)


async def test_a_capture_the_provider_made_before_the_crash_is_written_once_and_not_charged_again(
    crash: Crash,
) -> None:
    world, server = await crash.start("capture-called"), crash.server
    async with charger(server, World.CP_ID) as cp, client(server, world.driver) as http:
        booking_id = await book_now(http, world)
        transaction_id = await charge(cp)
        stop = stop_of(transaction_id)
        # The payments worker captures on its own thread: the answer may or may not get out first.
        answered = await cp.send(stop)
    await server.died_at("capture-called")

    # The crash's window: the provider captured; the ledger has not heard of it.
    assert steps_of(world, booking_id) == [("hold", "done"), ("capture", "pending")]
    assert kinds_of(world, booking_id) == ["hold"]
    assert provider(world.app).total_captured == COST
    assert any(f.startswith("gateway_agrees_with_ledger") for f in failing(world.app, final=False))

    await claims_lapsed(world.app)
    await server.restart()
    async with charger(server, World.CP_ID) as cp:
        if answered is None:
            answer = await cp.must(stop)
            assert answer.id_tag_info["status"] == "Accepted"
        else:
            assert answered.id_tag_info["status"] == "Accepted"
        await cp.must(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
    await worked_off(world.app)
    assert_billed_once(world, booking_id, transaction_id)


# ---- releasing ------------------------------------------------------------------------------------


async def test_a_release_the_provider_made_before_the_crash_is_written_once(crash: Crash) -> None:
    world, server = await crash.start("release-called"), crash.server
    async with client(server, world.driver) as http:
        booked = await http.post("/bookings", json=booking_body(world, tomorrow()))
        assert booked.status_code == 201 and booked.json()["status"] == "confirmed", booked.text
        booking_id = booked.json()["id"]
        # The release runs on the payments worker's thread: the answer may or may not get out first.
        try:
            cancelled: httpx.Response | None = await http.post(f"/bookings/{booking_id}/cancel")
        except httpx.TransportError:
            cancelled = None
    await server.died_at("release-called")

    # The crash's window: the provider released the hold; the ledger still has it open.
    (booking,) = bookings(world.app)
    assert booking.status is BookingStatus.CANCELLED and booking.payment_ref is not None
    assert steps_of(world, booking_id) == [("hold", "done"), ("release", "pending")]
    assert kinds_of(world, booking_id) == ["hold"]
    assert provider(world.app).holds[booking.payment_ref].state == "released"
    assert any(f.startswith("provider_holds_match_ledger") for f in failing(world.app, final=False))

    await claims_lapsed(world.app)
    await server.restart()
    async with client(server, world.driver) as http:
        if cancelled is None:
            # Sent again: the cancellation had committed, so there is nothing left to cancel.
            again = await http.post(f"/bookings/{booking_id}/cancel")
            assert again.status_code == 409, again.text
        else:
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        seen = (await http.get(f"/bookings/{booking_id}")).json()
        assert (seen["status"], seen["fee"], seen["cancelled_by"]) == ("cancelled", 0, "driver")
    await worked_off(world.app)

    assert steps_of(world, booking_id) == [("hold", "done"), ("release", "done")]
    assert kinds_of(world, booking_id) == ["hold", "void"]
    hold = provider(world.app).holds[booking.payment_ref]
    assert (hold.state, hold.captured) == ("released", 0)
    assert provider(world.app).total_captured == 0
    assert failing(world.app) == []


# ---- paying hosts out -----------------------------------------------------------------------------


def settle_a_session(world: World) -> int:
    """Made before the server runs: the host verified and owed the host share of one paid session.
    What the host is owed, pence."""
    app = world.app
    app.hosting.set_kyc(world.host.hid, KycStatus.VERIFIED)
    app.charging.boot(World.CP_ID, V16)
    app.charging.status(World.CP_ID, 1, ConnectorStatus.AVAILABLE)
    booking = app.bookings.book(BookRequest(world.driver.did, world.charger_id, 1, 60, BOOKED_WH))
    at = app.clock.now()
    transaction_id = app.charging.start(World.CP_ID, 1, World.ID_TAG, METER_START, at).transaction_id
    app.charging.stop(World.CP_ID, transaction_id, METER_STOP, at)  # captured here, inline
    assert kinds_of(world, booking.booking_id) == ["capture", "hold", "processor_fee", "split"]
    owed = split_fee(COST, app.config.rules.platform_fee_bps, app.config.rules.vat_bps).host_share
    assert host_balance(world) == owed
    return owed


def host_balance(world: World) -> int:
    """What the ledger still owes the host (its payable account's credit)."""
    return -ledger.posted_balances(entries(world.app)).get(ledger.host_payable(world.host.hid), 0)


def payouts(world: World) -> list[tuple[str, int]]:
    return [(e.entry_id, e.amount) for e in entries(world.app) if e.kind is EntryKind.PAYOUT]


async def test_a_payout_committed_but_unanswered_is_not_paid_again_when_the_operator_retries(
    crash: Crash,
) -> None:
    world, server = crash.world, crash.server
    owed = settle_a_session(world)  # before the server runs: nothing of it is the server's to do
    await crash.start("payout-committed")
    async with client(server, world.admin) as http:
        with pytest.raises(httpx.TransportError):
            await http.post("/admin/payouts")
    await server.died_at("payout-committed")

    # The crash's window: the payout is in the ledger; the operator never heard.
    first = [(f"payout:{world.host.hid}:1", owed)]
    assert payouts(world) == first and host_balance(world) == 0

    await server.restart()
    async with client(server, world.admin) as http:
        again = await http.post("/admin/payouts")
        assert again.status_code == 200, again.text
        # Nothing owed: it was paid before the crash.
        assert again.json() == {
            "paid": {},
            "skipped": [],
            "export_credits_paid": {},
            "export_credits_withheld": [],
        }
    assert payouts(world) == first and host_balance(world) == 0
    assert provider(world.app).total_captured == COST
    assert failing(world.app) == []
