"""The driver script on its own: a fake engine answers each effect, so every branch is checked without
HTTP, SimPy or a backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from chargeshare.domain.geo import Point
from simulators import driver as script
from simulators.driver import DriverStats
from simulators.fleet import DriverPlan

START = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
PLAN = DriverPlan(
    name="Ann",
    id_tag="TAG1",
    home=Point(51.45, -2.59),
    arrives_after_s=60,
    travel_s=600,
    want_wh=14_000,
    battery_wh=60_000,
    soc_wh=20_000,
    max_power_w=11_000,
    intent="charge",
)
HERE = script.Candidate(1, "CS00001")


@dataclass
class FakeEngine:
    """Answers effects with `answer` and moves its clock on each Sleep; records what was asked."""

    answer: Callable[[script.Effect[object]], object]
    window_s: float = 6 * 3600
    elapsed: float = 0.0

    def now(self) -> datetime:
        return START + timedelta(seconds=self.elapsed)

    def seconds_left(self) -> float:
        return self.window_s - self.elapsed

    def run(self, plan: DriverPlan, stats: DriverStats) -> tuple[str, list[script.Effect[object]]]:
        steps, outcome = script.drive(plan, self, stats, 600.0), None
        asked: list[script.Effect[object]] = []
        while True:
            try:
                effect = steps.send(outcome)
            except StopIteration as end:
                return end.value, asked
            asked.append(effect)
            if isinstance(effect, script.Sleep):
                self.elapsed += effect.seconds
            outcome = self.answer(effect)


def booked_here(engine: FakeEngine) -> script.Booked:
    starts = engine.now() + timedelta(seconds=PLAN.travel_s)
    return script.Booked(
        7, starts, starts + timedelta(minutes=script.booking_minutes(PLAN.want_wh)), HERE.charge_point_id
    )


def test_booking_length_is_what_the_car_needs_at_7kw_with_a_margin_within_bounds() -> None:
    assert script.booking_minutes(14_000) == 176  # 2 h at 7 kW, times 1.3, plus 20 min
    assert script.booking_minutes(0) == 20
    assert script.booking_minutes(100_000) == 240


def test_a_charging_driver_books_plugs_in_waits_unplugs_and_reads_the_receipt() -> None:
    engine = FakeEngine(lambda e: None)
    receipts = iter([None, 1234])

    def answer(e: script.Effect[object]) -> object:
        match e:
            case script.Search():
                return [HERE]
            case script.Book():
                return booked_here(engine)
            case script.PlugIn():
                return script.Plugged("handle", charging=True)
            case script.FetchReceipt():
                return next(receipts)
        return None

    engine.answer = answer
    stats = DriverStats(bookings_answered=set())
    outcome, asked = engine.run(PLAN, stats)
    assert outcome == "charged"
    s = script
    assert [type(e) for e in asked] == [
        s.Sleep, s.Search, s.Book, s.Sleep, s.PlugIn, s.WaitDone, s.Unplug,
        s.FetchReceipt, s.Sleep, s.FetchReceipt,
    ]  # fmt: skip
    search, book = asked[1], asked[2]
    assert isinstance(search, script.Search) and isinstance(book, script.Book)
    assert search.limit == script.CANDIDATES and search.available_from == book.starts_at
    assert search.available_until - search.available_from == timedelta(minutes=book.minutes)
    assert engine.elapsed >= PLAN.arrives_after_s + PLAN.travel_s
    assert stats.receipts_pence == 1234 and stats.bookings_answered == {7}


def test_conflicts_on_every_candidate_end_the_round_as_all_taken() -> None:
    stats = DriverStats()
    outcome, asked = FakeEngine(lambda e: [HERE, HERE] if isinstance(e, script.Search) else script.TAKEN).run(
        PLAN, stats
    )
    assert outcome == "no_charger" and stats.no_charger_because == {script.ALL_TAKEN: 1}
    assert stats.conflicts == 2 * script.SEARCH_ROUNDS
    # Each round is followed by a wait, the last one's too (the driver's outcome comes after it).
    assert [e.seconds for e in asked if isinstance(e, script.Sleep)][1:] == [
        script.RETRY_AFTER_S
    ] * script.SEARCH_ROUNDS


def test_a_rate_limited_booking_backs_off_like_a_full_map() -> None:
    stats = DriverStats()
    outcome, _ = FakeEngine(lambda e: [HERE] if isinstance(e, script.Search) else script.TOO_FREQUENT).run(
        PLAN, stats
    )
    assert outcome == "no_charger" and stats.no_charger_because == {script.RATE_LIMITED: 1}
    assert stats.rate_limited == script.SEARCH_ROUNDS


def test_payments_down_is_tried_again_and_another_refusal_is_an_error() -> None:
    stats = DriverStats()
    down = FakeEngine(lambda e: [HERE] if isinstance(e, script.Search) else script.PAYMENTS_UNAVAILABLE)
    assert down.run(PLAN, stats)[0] == "payments_down" and stats.payments_down == script.SEARCH_ROUNDS
    stats = DriverStats()
    refused = FakeEngine(
        lambda e: [HERE] if isinstance(e, script.Search) else script.Refused("booking answered 400 no")
    )
    assert refused.run(PLAN, stats)[0] == "error" and stats.errors == ["Ann: booking answered 400 no"]


def test_no_show_and_cancel_and_a_charger_that_will_not_start() -> None:
    def engine_for(plugged: object) -> FakeEngine:
        engine = FakeEngine(lambda e: None)
        engine.answer = lambda e: (
            [HERE] if isinstance(e, script.Search) else booked_here(engine) if isinstance(e, script.Book) else
            plugged if isinstance(e, script.PlugIn) else True if isinstance(e, script.Cancel) else None
        )  # fmt: skip
        return engine

    no_show = engine_for(None)
    assert no_show.run(replace(PLAN, intent="no_show"), DriverStats())[0] == "no_show"
    assert no_show.elapsed == PLAN.arrives_after_s + PLAN.travel_s + 60 * script.booking_minutes(PLAN.want_wh)
    outcome, asked = engine_for(None).run(replace(PLAN, intent="cancel"), DriverStats())
    assert outcome == "cancelled" and isinstance(asked[-1], script.Cancel)
    assert engine_for(None).run(PLAN, DriverStats())[0] == "refused_at_charger"
    outcome, asked = engine_for(script.Plugged("handle", charging=False)).run(PLAN, DriverStats())
    assert outcome == "refused_at_charger" and [type(e) for e in asked[-2:]] == [script.Unplug, script.Cancel]


def test_a_driver_arriving_after_the_window_does_nothing() -> None:
    outcome, asked = FakeEngine(lambda e: None, window_s=30).run(PLAN, DriverStats())
    assert outcome == "too_late" and len(asked) == 1


def test_a_driver_with_a_limit_books_only_what_is_quoted_within_it() -> None:
    dear, cheap = script.Candidate(2, "CS00002"), HERE
    engine = FakeEngine(lambda e: None)

    def answer(e: script.Effect[object]) -> object:
        match e:
            case script.Search():
                return [dear, cheap]
            case script.Quote(candidate):
                return script.Quoted(60 if candidate == dear else 30)
            case script.Book():
                return booked_here(engine)
            case script.PlugIn():
                return script.Plugged(object(), charging=True)
            case script.FetchReceipt():
                return 500
        return None

    engine.answer = answer
    outcome, asked = engine.run(replace(PLAN, max_price_per_kwh=40), DriverStats())
    assert outcome == script.CHARGED
    assert [e.candidate for e in asked if isinstance(e, script.Book)] == [cheap]


def test_a_driver_books_with_the_quote_held_for_it() -> None:
    engine = FakeEngine(lambda e: None)

    def answer(e: script.Effect[object]) -> object:
        match e:
            case script.Search():
                return [HERE]
            case script.Quote():
                return script.Quoted(30, quote_id=7)
            case script.Book():
                return script.TAKEN
        return None

    engine.answer = answer
    _, asked = engine.run(replace(PLAN, max_price_per_kwh=40), DriverStats())
    assert {(b.max_price_per_kwh, b.quote_id) for b in asked if isinstance(b, script.Book)} == {(40, 7)}


def test_a_driver_quoted_above_its_limit_everywhere_is_priced_out() -> None:
    def answer(e: script.Effect[object]) -> object:
        match e:
            case script.Search():
                return [HERE]
            case script.Quote():
                return script.Quoted(60)
        return None

    stats = DriverStats()
    outcome, asked = FakeEngine(answer).run(replace(PLAN, max_price_per_kwh=40), stats)
    assert outcome == script.NO_CHARGER
    assert stats.no_charger_because == {script.PRICED_OUT: 1}
    assert not any(isinstance(e, script.Book) for e in asked)


def test_a_driver_without_a_limit_asks_for_no_quote() -> None:
    def answer(e: script.Effect[object]) -> object:
        return (
            [HERE] if isinstance(e, script.Search) else script.TAKEN if isinstance(e, script.Book) else None
        )

    _, asked = FakeEngine(answer).run(PLAN, DriverStats())
    assert not any(isinstance(e, script.Quote) for e in asked)


def test_a_price_risen_since_the_quote_moves_the_driver_on_with_its_limit_named() -> None:
    dearer_now, cheap = script.Candidate(2, "CS00002"), HERE
    engine = FakeEngine(lambda e: None)
    booked: list[script.Book] = []

    def answer(e: script.Effect[object]) -> object:
        match e:
            case script.Search():
                return [dearer_now, cheap]
            case script.Quote():
                return script.Quoted(30)
            case script.Book(candidate):
                booked.append(e)
                return script.TOO_DEAR if candidate == dearer_now else booked_here(engine)
            case script.PlugIn():
                return script.Plugged(object(), charging=True)
            case script.FetchReceipt():
                return 500
        return None

    engine.answer = answer
    outcome, _ = engine.run(replace(PLAN, max_price_per_kwh=40), DriverStats())
    assert outcome == script.CHARGED
    assert [(b.candidate, b.max_price_per_kwh) for b in booked] == [(dearer_now, 40), (cheap, 40)]
