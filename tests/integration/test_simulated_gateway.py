"""The simulated provider's books live in the store's database: a restart keeps them, references
never repeat, and every process sees the same knobs (an outage switched on by a scenario)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from chargeshare.adapters.payments_sim import GatewayError, SimulatedGateway, SqlBooks
from chargeshare.adapters.sql import migrate
from chargeshare.adapters.sql.store import make_engine
from chargeshare.services.clock import ManualClock
from chargeshare.services.ports import HoldExpired, ProviderUnavailable
from tests.conftest import T0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = (
        f"sqlite:///{tmp_path / 'cs.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url


def provider(url: str, clock: ManualClock) -> tuple[SimulatedGateway, Engine]:
    engine = make_engine(url)
    return SimulatedGateway(clock=clock, books=SqlBooks(engine)), engine


def test_a_restarted_provider_keeps_its_books(url: str) -> None:
    clock = ManualClock(T0)
    before, engine = provider(url, clock)
    held = before.authorize(amount=500, customer="driver:1", idempotency_key="k-hold")
    assert held.approved
    engine.dispose()  # the process is gone
    after, engine = provider(url, clock)
    try:
        # The replayed key answers as before; the hold is there to capture, once.
        assert after.authorize(amount=500, customer="driver:1", idempotency_key="k-hold") == held
        after.capture(reference=held.reference, amount=420, idempotency_key="k-capture")
        after.capture(reference=held.reference, amount=420, idempotency_key="k-capture")
        assert after.total_captured == 420
        with pytest.raises(GatewayError):
            after.release(reference=held.reference, idempotency_key="k-release")
        other = after.authorize(amount=300, customer="driver:2", idempotency_key="k-other")
        assert other.reference != held.reference  # references never repeat
        assert after.open_authorisations() == {"driver:2": (1, 300)}
        clock.advance(timedelta(days=7).total_seconds())
        with pytest.raises(HoldExpired):
            after.capture(reference=other.reference, amount=1, idempotency_key="k-late")
        assert after.holds[other.reference].state == "expired"  # recorded, though the call failed
        assert after.open_authorisations() == {}
    finally:
        engine.dispose()


def test_every_process_sees_the_same_knobs(url: str) -> None:
    clock = ManualClock(T0)
    scenario, e1 = provider(url, clock)
    backend, e2 = provider(url, clock)
    try:
        scenario.down = True
        with pytest.raises(ProviderUnavailable):
            backend.authorize(amount=1, customer="driver:1", idempotency_key="k")
        assert backend.holds == {}  # an outage does nothing
        scenario.down = False
        scenario.decline_over = 100
        assert not backend.authorize(amount=101, customer="driver:1", idempotency_key="k2").approved
        assert backend.authorize(amount=100, customer="driver:1", idempotency_key="k3").approved
    finally:
        e1.dispose()
        e2.dispose()


def test_a_call_slower_than_the_timeout_fails_but_happened(url: str) -> None:
    clock = ManualClock(T0)
    gateway, engine = provider(url, clock)
    try:
        gateway.timeout_s = 0.0
        gateway.latency_s = 0.01
        with pytest.raises(ProviderUnavailable, match="did not answer"):
            gateway.authorize(amount=200, customer="driver:1", idempotency_key="slow")
        gateway.latency_s = 0.0
        # The provider did authorise: the retry with the same key is given that authorisation.
        again = gateway.authorize(amount=200, customer="driver:1", idempotency_key="slow")
        assert again.approved and list(gateway.holds) == [again.reference]
    finally:
        engine.dispose()


def test_a_latency_on_the_clock_passes_only_as_the_clock_moves(url: str) -> None:
    clock = ManualClock(T0)
    gateway, engine = provider(url, clock)
    try:
        gateway.clock_latency_s = 60.0
        answered: list[bool] = []
        caller = threading.Thread(
            target=lambda: answered.append(
                gateway.authorize(amount=200, customer="driver:1", idempotency_key="k").approved
            )
        )
        caller.start()
        for _ in range(1_000):  # bounded: until the call is waiting on the clock
            if gateway.slowed:
                break
            time.sleep(0.005)
        assert gateway.slowed == 1 and answered == []
        clock.advance(60)
        caller.join(timeout=10)
        assert answered == [True] and gateway.timed_out == 0
    finally:
        engine.dispose()


def test_a_clock_that_stands_still_never_answers_within_the_timeout(url: str) -> None:
    # A caller holding up a simulation's clock (its event loop) waits out its own patience.
    clock = ManualClock(T0)
    gateway, engine = provider(url, clock)
    try:
        gateway.clock_latency_s = 60.0
        gateway.timeout_s = 0.05
        with pytest.raises(ProviderUnavailable, match="did not answer"):
            gateway.authorize(amount=200, customer="driver:1", idempotency_key="k")
        assert (gateway.slowed, gateway.timed_out) == (1, 1)
        assert len(gateway.holds) == 1  # it happened all the same
    finally:
        engine.dispose()
