"""How often a charger that refuses (or leaves unanswered) a command owed to it is asked again,
as pure rules.

A V2G export or a driver's override is owed to a session's charger until it accepts it. A charger
that refuses is asked again after a delay that doubles with each refusal, up to a cap; after
`limit` refusals it is reported as refused and no longer asked for that session. A send that goes
unanswered (no reply in time, or a reply that is not a valid answer) waits on the same doubling,
counted apart: it says nothing of whether the charger would take the command, so it never gives up
(asked at most once per cap while owed). Accepting clears both counts. The state is kept in the
database (one row per session and kind), so every process and a restarted one read the same
schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from chargeshare.domain.errors import InvalidRequest


class OwedKind(StrEnum):
    """The commands owed to a session's charger until it accepts them."""

    EXPORT = "export"  # V2G: NotifyAllowedEnergyTransfer and the discharging TxProfile
    OVERRIDE = "override"  # the driver's override TxProfile


@dataclass(frozen=True)
class Refusals:
    """A session's charger refused a command `count` times and left `unanswered` sends of it
    unanswered, the last of either at `last_at`; it is asked again from `retry_at`, or never again
    for the session (`retry_at` None: given up, after `limit` refusals)."""

    count: int
    last_at: datetime
    retry_at: datetime | None
    unanswered: int = 0

    @property
    def given_up(self) -> bool:
        return self.retry_at is None

    def due(self, now: datetime) -> bool:
        """Whether the charger may be asked again at `now`."""
        return self.retry_at is not None and now >= self.retry_at


@dataclass(frozen=True)
class Backoff:
    """The n-th failed send (refused or unanswered) waits `first_s * 2**(n-1)`, at most `cap_s`;
    the `limit`-th refusal gives up."""

    first_s: int = 60
    cap_s: int = 3600
    limit: int = 8

    def __post_init__(self) -> None:
        if self.first_s < 1 or self.cap_s < self.first_s or self.limit < 1:
            raise InvalidRequest("a back-off needs 1 <= first_s <= cap_s and a limit of at least 1")

    def delay_s(self, count: int) -> int:
        """Seconds to wait after the `count`-th refusal (count >= 1)."""
        if count < 1:
            raise InvalidRequest("a delay follows at least one refusal")
        # Doubling stops once past the cap, so a large count never builds a huge integer.
        doublings = min(count - 1, self.cap_s.bit_length())
        return min(self.cap_s, self.first_s << doublings)

    def refused(self, before: Refusals | None, now: datetime) -> Refusals:
        """The state after one more refusal at `now`."""
        if before is None:
            return self.after(1, now)
        return self.after(before.count + 1, now, before.unanswered)

    def went_unanswered(self, before: Refusals | None, now: datetime) -> Refusals:
        """The state after one more unanswered send at `now`: given up stays given up."""
        if before is None:
            return self.after(0, now, 1)
        if before.given_up:
            return Refusals(before.count, before.last_at, None, before.unanswered + 1)
        return self.after(before.count, now, before.unanswered + 1)

    def after(self, count: int, now: datetime, unanswered: int = 0) -> Refusals:
        """The state after `count` refusals and `unanswered` unanswered sends (at least one of
        either), the last at `now`."""
        if count >= self.limit:
            return Refusals(count, now, None, unanswered)
        return Refusals(count, now, now + timedelta(seconds=self.delay_s(count + unanswered)), unanswered)
