"""The summary's pricing measures: quotes as kept, and utilisation cut at the run's window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chargeshare.domain.charger import ChargerStatus, ConnectorStatus, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.session import SessionStatus
from chargeshare.ocpp import V16
from chargeshare.services.records import BookingQuote, ChargerView, ConnectorView, SessionRecord
from simulators.pricing_metrics import pricing_summary

T = datetime(2026, 3, 4, tzinfo=UTC)
CHARGERS = [
    ChargerView(
        i,
        f"CS{i}",
        i,
        "home",
        Point(51.4, -2.6),
        30,
        ChargerStatus.ONLINE,
        V16,
        None,
        (ConnectorView(i, 1, ConnectorType.TYPE2, 7_400, ConnectorStatus.AVAILABLE),),
    )
    for i in (1, 2)
]


def session(started_h: float, stopped_h: float | None) -> SessionRecord:
    stopped = None if stopped_h is None else T + timedelta(hours=stopped_h)
    status = SessionStatus.CHARGING if stopped is None else SessionStatus.STOPPED
    return SessionRecord(
        1, 1, 1, "TAG", T + timedelta(hours=started_h), 0, 0, status, stopped, None, None, None
    )


def test_quotes_and_utilisation_within_the_window() -> None:
    quotes = {
        1: BookingQuote(1, 20, "dynamic", T),
        2: BookingQuote(2, 41, "dynamic", T),
        3: BookingQuote(3, 30, "flat", T),
    }
    # Two connectors over 4 h: 8 connector-hours. One session from before the window to 1 h in, one
    # from 3 h to past the end, one still open: 2 h charging in the window.
    sessions = [session(-1, 1), session(3, 5), session(2, None)]
    summary = pricing_summary(quotes, sessions, CHARGERS, (T, 4 * 3600), held_used=2)
    assert summary == {
        "quoted_bookings": 3,
        "dynamic_quotes": 2,
        "held_quote_bookings": 2,
        "quote_min_per_kwh": 20,
        "quote_max_per_kwh": 41,
        "quote_mean_per_kwh": 30,
        "utilisation_permille": 250,
    }


def test_without_a_window_utilisation_is_not_known() -> None:
    summary = pricing_summary({}, [session(0, 1)], CHARGERS, None)
    assert summary["utilisation_permille"] == 0 and summary["quoted_bookings"] == 0
