"""Kill the real server at a later hit of a failpoint (`name@N`), where a first-hit crash never
reaches: restart it on the same database, let recovery and the clients finish, and check every
invariant and that the provider was asked once per idempotency key.

- A session costing more than its hold: the hold is captured, then the rest is charged afresh as a
  top-up; the process dies once the provider captured the top-up (`capture-called@2`).
- Two stopped sessions whose captures a previous process left queued: the restarted server's
  payments worker drains both, and dies at the second capture (`capture-called@2`).
- A payout run over three hosts dies once the second host's payout is committed
  (`payout-committed@2`); the operator's retry pays the third, and only the third.
"""

from __future__ import annotations

from collections import defaultdict

import httpx
import pytest
from ocpp.v16 import call as call16
from sqlalchemy import select

from chargeshare.adapters.payments_sim import SqlBooks
from chargeshare.adapters.sql import schema as t
from chargeshare.domain import ledger
from chargeshare.domain.accounts import KycStatus
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorStatus, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.ledger import EntryKind
from chargeshare.domain.money import split_fee
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16
from chargeshare.services.booking import BookRequest
from tests import api_helpers
from tests.api_helpers import Caller
from tests.crash.harness import (
    Crash,
    World,
    bookings,
    charger,
    claims_lapsed,
    entries,
    failing,
    provider,
    worked_off,
)
from tests.crash.test_money_path_crashes import (
    BOOKED_WH,
    COST,
    HOLD,
    METER_START,
    METER_STOP,
    book_now,
    charge,
    client,
    kinds_of,
    steps_of,
)
from tests.e2e.ocpp_clients import now

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

OVERSHOOT_STOP = METER_START + 12_000  # 12 kWh on a 10 kWh booking: beyond the hold's headroom
OVERSHOOT_COST = 480  # 12 kWh at 40p
TOPUP = OVERSHOOT_COST - HOLD


def provider_calls(world: World) -> dict[str, tuple[list[str], list[str]]]:
    """Each hold the simulated provider made: the idempotency keys that authorised it, and those that
    captured or released it (its remembered replies, one per key, whatever number of times asked)."""
    books = provider(world.app).books
    assert isinstance(books, SqlBooks)
    r = t.sim_gateway_replies.c
    with books.engine.connect() as conn:
        replies = conn.execute(select(r.idempotency_key, r.approved, r.reference)).all()
    calls: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for key, approved, reference in replies:
        calls[reference][0 if approved is not None else 1].append(key)
    return {ref: (sorted(auth), sorted(settle)) for ref, (auth, settle) in calls.items()}


def assert_asked_once_per_key(world: World, expected: dict[str, tuple[list[str], list[str]]]) -> None:
    """Every hold authorised under one key and captured or released under one key, as `expected`
    says by booking (keys as in settlement.py): nothing asked again under a key of its own."""
    calls = provider_calls(world)
    holds = provider(world.app).holds
    assert sorted(calls) == sorted(holds), "a reply names a hold the provider lacks, or the reverse"
    for reference, (auth, settle) in calls.items():
        assert len(auth) == 1, f"{reference} authorised under several keys: {auth}"
        assert len(settle) == (holds[reference].state in ("captured", "released")), (reference, settle)
    assert sorted(calls.values()) == sorted(expected.values())


def capture_keys(booking_id: int) -> tuple[list[str], list[str]]:
    return [f"booking:{booking_id}:hold"], [f"booking:{booking_id}:capture-capture"]


# ---- a top-up's capture ---------------------------------------------------------------------------


async def topup_crashed(crash: Crash) -> None:
    failpoint = "capture-called@2"
    world, server = await crash.start(failpoint), crash.server
    async with charger(server, World.CP_ID) as cp, client(server, world.driver) as http:
        booking_id = await book_now(http, world)
        transaction_id = await charge(cp)
        stop = call16.StopTransaction(
            meter_stop=OVERSHOOT_STOP, timestamp=now(), transaction_id=transaction_id, id_tag=World.ID_TAG
        )
        # The payments worker captures on its own thread: the answer may or may not get out first.
        answered = await cp.send(stop)
    await server.died_at(failpoint)

    # The crash's window: the hold captured in full and written; the top-up authorised and captured
    # at the provider, its capture not in the ledger.
    assert steps_of(world, booking_id) == [("hold", "done"), ("capture", "done"), ("topup", "pending")]
    assert provider(world.app).total_captured == OVERSHOOT_COST
    assert sum(e.kind is EntryKind.CAPTURE for e in entries(world.app)) == 1
    assert any(f.startswith("gateway_agrees_with_ledger") for f in failing(world.app, final=False))

    await claims_lapsed(world.app)
    await server.restart()
    async with charger(server, World.CP_ID) as cp:
        if answered is None:
            answer = await cp.must(stop)
            assert answer.id_tag_info["status"] == "Accepted"
        await cp.must(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
    await worked_off(world.app)

    (booking,) = bookings(world.app)
    assert booking.status is BookingStatus.COMPLETED
    with world.app.store.reading() as tx:
        session = tx.sessions.get(transaction_id)
    assert session is not None and session.cost == OVERSHOOT_COST
    assert steps_of(world, booking_id) == [("hold", "done"), ("capture", "done"), ("topup", "done")]
    assert kinds_of(world, booking_id) == sorted(
        ["hold", "hold", "capture", "capture", "split", "split"] + ["processor_fee"] * 2
    )
    assert sorted((h.amount, h.captured, h.state) for h in provider(world.app).holds.values()) == [
        (TOPUP, TOPUP, "captured"),
        (HOLD, HOLD, "captured"),
    ]
    assert provider(world.app).total_captured == OVERSHOOT_COST
    assert_asked_once_per_key(
        world,
        {
            "hold": capture_keys(booking_id),
            "topup": ([f"booking:{booking_id}:topup:hold"], [f"booking:{booking_id}:topup-capture"]),
        },
    )
    assert failing(world.app) == []


# ---- two captures drained in one pass ---------------------------------------------------------------


def add_charger(world: World, host: Caller, cp_id: str) -> int:
    connector = ConnectorSpec(1, ConnectorType.TYPE2, 7400)
    spec = ChargerSpec(cp_id, host.hid, Point(51.46, -2.58), Tariff(World.PRICE), (connector,))
    return world.app.marketplace.add_charger(spec).charger_id


def stopped_session(world: World, charger_id: int, cp_id: str, driver: Caller, tag: str) -> int:
    """Made by the test process: a booking charged and stopped on its own charger; its booking id."""
    app = world.app
    app.charging.boot(cp_id, V16)
    app.charging.status(cp_id, 1, ConnectorStatus.AVAILABLE)
    booking = app.bookings.book(BookRequest(driver.did, charger_id, 1, 60, BOOKED_WH))
    at = app.clock.now()
    transaction_id = app.charging.start(cp_id, 1, tag, METER_START, at).transaction_id
    app.charging.stop(cp_id, transaction_id, METER_STOP, at)
    return booking.booking_id


async def drained_pair_crashed(crash: Crash) -> None:
    failpoint = "capture-called@2"
    world, server = crash.world, crash.server
    # Stopped while no worker works the steps: both captures are left queued, as a process that
    # died after committing the stops would leave them, for the next one's worker to drain.
    world.app.settlement.on_queued = lambda _booking_id: None
    first = stopped_session(world, world.charger_id, World.CP_ID, world.driver, World.ID_TAG)
    other = api_helpers.driver(world.app, "Dan", "CRASH-TAG-2")
    second = stopped_session(
        world, add_charger(world, world.host, "CRASH-CP-2"), "CRASH-CP-2", other, "CRASH-TAG-2"
    )
    world.app.settlement.on_queued = None
    both = (first, second)
    assert [steps_of(world, b) for b in both] == [[("hold", "done"), ("capture", "pending")]] * 2

    server.start(failpoint)
    await server.died_at(failpoint)
    # The crash's window: the provider captured both; the second capture at least is not written.
    assert provider(world.app).total_captured == 2 * COST
    assert ("capture", "pending") in [*steps_of(world, first), *steps_of(world, second)]
    assert any(f.startswith("gateway_agrees_with_ledger") for f in failing(world.app, final=False))

    await claims_lapsed(world.app)
    await server.restart()
    await worked_off(world.app)
    assert [b.status for b in bookings(world.app)] == [BookingStatus.COMPLETED] * 2
    for booking_id in both:
        assert steps_of(world, booking_id) == [("hold", "done"), ("capture", "done")]
        assert kinds_of(world, booking_id) == ["capture", "hold", "processor_fee", "split"]
    assert [(h.amount, h.captured, h.state) for h in provider(world.app).holds.values()] == [
        (HOLD, COST, "captured")
    ] * 2
    assert provider(world.app).total_captured == 2 * COST
    assert_asked_once_per_key(world, {str(b): capture_keys(b) for b in both})
    assert failing(world.app) == []


# ---- the second payout of a run ---------------------------------------------------------------------


def payouts_of(world: World, host: Caller) -> list[tuple[str, int]]:
    return [
        (e.entry_id, e.amount)
        for e in entries(world.app)
        if e.kind is EntryKind.PAYOUT and e.entry_id.startswith(f"payout:{host.hid}:")
    ]


async def payout_run_crashed(crash: Crash) -> None:
    failpoint = "payout-committed@2"
    world, server = crash.world, crash.server
    hosts = [world.host, api_helpers.host(world.app, "Hugo"), api_helpers.host(world.app, "Hana")]
    booked = []
    for n, host in enumerate(hosts):
        world.app.hosting.set_kyc(host.hid, KycStatus.VERIFIED)
        if n == 0:
            charger_id, cp_id, driver, tag = world.charger_id, World.CP_ID, world.driver, World.ID_TAG
        else:
            cp_id, tag = f"CRASH-CP-{n + 1}", f"CRASH-TAG-{n + 1}"
            charger_id, driver = add_charger(world, host, cp_id), api_helpers.driver(world.app, f"D{n}", tag)
        booked.append(stopped_session(world, charger_id, cp_id, driver, tag))  # captured inline
    owed = split_fee(COST, world.app.config.rules.platform_fee_bps, world.app.config.rules.vat_bps).host_share
    hosts.sort(key=lambda h: h.hid)  # the order a run pays them in

    await crash.start(failpoint)
    async with client(server, world.admin) as http:
        with pytest.raises(httpx.TransportError):
            await http.post("/admin/payouts")
    await server.died_at(failpoint)
    # The crash's window: two hosts' payouts committed, the third's not made; the operator not answered.
    assert [len(payouts_of(world, h)) for h in hosts] == [1, 1, 0]

    await server.restart()
    async with client(server, world.admin) as http:
        again = await http.post("/admin/payouts")
        assert again.status_code == 200, again.text
        assert again.json()["paid"] == {str(hosts[2].hid): owed}  # only the one not paid before
    for host in hosts:
        assert payouts_of(world, host) == [(f"payout:{host.hid}:1", owed)]
    balances = ledger.posted_balances(entries(world.app))
    assert [balances.get(ledger.host_payable(h.hid), 0) for h in hosts] == [0, 0, 0]
    assert provider(world.app).total_captured == 3 * COST
    assert_asked_once_per_key(world, {str(b): capture_keys(b) for b in booked})
    assert failing(world.app) == []


CASES = {
    "topup-capture": topup_crashed,
    "second-capture-drained": drained_pair_crashed,
    "second-payout-of-a-run": payout_run_crashed,
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_crash_at_a_later_hit_of_a_failpoint_loses_and_doubles_nothing(
    crash: Crash, case: str
) -> None:
    await CASES[case](crash)
