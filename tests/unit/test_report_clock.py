"""Where one connection places its charger's timestamps (chargeshare.ocpp.report_clock), interleaving
by interleaving: a right clock, a queue replayed as the charger connects, a clock going back
mid-session and across a reboot, and a clock set right again."""

from __future__ import annotations

from datetime import timedelta

from chargeshare.ocpp.report_clock import ReportClock
from chargeshare.services.rules import MarketplaceRules
from tests.conftest import T0

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
RULES = MarketplaceRules()  # tolerance 60 s, replay window 300 s


def opened() -> ReportClock:
    return ReportClock.opened(RULES, T0)


def test_a_right_clock_places_each_report_at_its_own_time_and_none_after_now() -> None:
    clock = opened()
    assert clock.status(T0 + 9 * MINUTE, T0 + 10 * MINUTE) == T0 + 9 * MINUTE
    assert clock.transaction(T0 + 2 * MINUTE, T0 + 10 * MINUTE) == T0 + 2 * MINUTE
    assert clock.status(T0 + HOUR, T0 + 11 * MINUTE) == T0 + 11 * MINUTE  # a fast clock: now
    assert clock.behind == timedelta(0)


def test_a_report_replayed_as_the_charger_connects_stays_at_its_own_time() -> None:
    """Booted, the current status, then a status made while offline: within the replay window it is
    placed at its own time (so the current one stands), and teaches nothing."""
    clock = opened()
    clock.booted(T0)
    assert clock.status(T0, T0) == T0
    assert clock.status(T0 - 40 * MINUTE, T0 + 2 * MINUTE) == T0 - 40 * MINUTE
    assert clock.behind == timedelta(0)


def test_queued_transaction_messages_never_teach_the_clock() -> None:
    clock = opened()
    now = T0 + HOUR
    assert clock.transaction(T0, now) == T0  # a start replayed an hour late
    assert clock.behind == timedelta(0)


def test_a_clock_gone_back_mid_session_is_followed_once_the_connection_is_settled() -> None:
    """Up for twenty minutes, the clock jumps an hour back: the report is placed when it came, and
    so is what follows it, in the order it comes."""
    clock = opened()
    assert clock.status(T0 + MINUTE, T0 + MINUTE) == T0 + MINUTE
    now = T0 + 20 * MINUTE
    assert clock.status(now - HOUR, now) == now
    assert clock.behind == HOUR
    later = now + 5 * MINUTE
    assert clock.status(later - HOUR, later) == later
    assert clock.transaction(later - HOUR - MINUTE, later) == later - MINUTE  # a start a minute before


def test_a_clock_gone_back_within_the_replay_window_is_taken_for_a_replay() -> None:
    """Just connected, a report lagging by an hour may be a replayed one: at its own time."""
    clock = opened()
    clock.status(T0, T0)
    now = T0 + 2 * MINUTE
    assert clock.status(now - HOUR, now) == now - HOUR
    later = T0 + 6 * MINUTE  # settled: the next one teaches
    assert clock.status(later - HOUR, later) == later


def test_a_clock_gone_back_across_a_reboot_is_read_from_the_first_status_it_boots_with() -> None:
    clock = opened()
    now = T0 + 3 * HOUR
    clock.booted(now)
    assert clock.status(now - HOUR, now) == now  # reported as it boots: the state now
    assert clock.behind == HOUR
    assert clock.transaction(now + MINUTE - HOUR, now + MINUTE) == now + MINUTE


def test_a_boot_with_the_clock_right_learns_nothing_and_forgets_what_was_learned() -> None:
    clock = opened()
    clock.status(T0 + 10 * MINUTE - HOUR, T0 + 10 * MINUTE)
    assert clock.behind == HOUR
    now = T0 + 20 * MINUTE
    clock.booted(now)
    assert clock.behind == timedelta(0)
    assert clock.status(now - timedelta(seconds=30), now) == now - timedelta(seconds=30)
    assert clock.behind == timedelta(0)


def test_a_clock_set_right_again_is_followed_at_once() -> None:
    clock = opened()
    now = T0 + 10 * MINUTE
    clock.status(now - HOUR, now)
    assert clock.behind == HOUR
    later = now + MINUTE
    assert clock.status(later, later) == later
    assert clock.behind == timedelta(0)
    # A transaction message made on the wrong clock and sent late is placed at its own stamp.
    assert clock.transaction(now - HOUR, later) == now - HOUR


def test_the_first_status_on_a_new_link_says_where_the_clock_is_without_a_boot() -> None:
    """A 1.6 charger may connect again without booting, its clock still an hour behind."""
    now = T0 + 30 * MINUTE
    clock = ReportClock.opened(RULES, now)
    assert clock.status(now - HOUR, now) == now
    assert clock.behind == HOUR


def test_a_frame_still_handled_on_an_old_link_is_at_its_own_time() -> None:
    """The old link, up for an hour, carried reports up to a minute ago; a status made two minutes
    later reaches its handler five minutes late (the charger has connected again elsewhere): in
    order on its link, so no clock gone back, and placed at its own time."""
    clock = opened()
    clock.status(T0 + MINUTE, T0 + MINUTE)
    clock.status(T0 + HOUR - MINUTE, T0 + HOUR - MINUTE)
    now = T0 + HOUR + 6 * MINUTE
    assert clock.status(T0 + HOUR + MINUTE, now) == T0 + HOUR + MINUTE
    assert clock.behind == timedelta(0)


def test_a_boot_forgets_the_stamps_before_it() -> None:
    """The clock ran an hour fast, then the charger rebooted with it right: a report that lags two
    minutes, in order since the boot, is no clock gone back (the old stamps are no measure)."""
    clock = opened()
    clock.status(T0 + HOUR, T0)  # ahead: now
    now = T0 + 10 * MINUTE
    clock.booted(now)
    assert clock.status(now, now) == now
    later = now + 10 * MINUTE
    assert clock.status(later - 2 * MINUTE, later) == later - 2 * MINUTE
    assert clock.behind == timedelta(0)
