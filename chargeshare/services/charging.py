"""What chargers tell us, whatever their OCPP version: boot, status, authorise, start, meter, stop."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial

from chargeshare.domain.booking import (
    LEAST_PERIOD,
    WALK_IN_HOLD,
    BookingEvent,
    BookingStatus,
    next_status,
    walk_in_period,
)
from chargeshare.domain.charger import BootPolicy, ChargerStatus, ConnectorStatus
from chargeshare.domain.errors import BookingConflict, Busy, DomainError, NotFound, StartTaken
from chargeshare.domain.session import SessionStatus, billed_energy, unmetered
from chargeshare.domain.tariff import Tariff
from chargeshare.domain.tokens import Basis, IdToken, Situation, TokenStatus, decide
from chargeshare.failpoints import failpoint
from chargeshare.ocpp import OcppVersion
from chargeshare.services.booking import RESERVATION_NONE
from chargeshare.services.clock import Clock
from chargeshare.services.events import (
    ChargerBooted,
    ChargerOffline,
    ChargerOnline,
    ConnectorStatusWanted,
    EnergyLimitReached,
    MessageBus,
    MeterReading,
    SessionClosedWithoutStop,
    SessionStarted,
    SessionStopped,
    SessionUnmetered,
    TransactionEventsMissing,
)
from chargeshare.services.ports import LastSeen, Store, UnitOfWork
from chargeshare.services.records import BookingRecord, ChargerView, ConnectorView, SessionRecord
from chargeshare.services.rules import MarketplaceRules
from chargeshare.services.settlement import SettlementService, capture_key
from chargeshare.services.v2g import (
    LateCredit,
    credit_export,
    credit_late_export,
    late_export,
    record_export,
)

log = logging.getLogger(__name__)


class AuthStatus(StrEnum):
    """The idTagInfo / idTokenInfo status we answer: the same words in 1.6 and 2.0.1."""

    ACCEPTED = "Accepted"
    INVALID = "Invalid"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"


@dataclass(frozen=True)
class TokenAnswer:
    """An Authorize's answer: the status, and what the charger may cache with it."""

    status: AuthStatus
    group_id: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class _Presented:
    """A token as presented at a charger: whose it is and its status in force (None: unknown)."""

    driver_id: int | None
    status: TokenStatus | None
    token: IdToken | None = None

    @property
    def master_pass(self) -> bool:
        return self.token is not None and self.token.master_pass


@dataclass(frozen=True)
class BootResult:
    """The answer to a BootNotification; None for an unregistered charger. `interval_s` is the
    heartbeat interval when Accepted, otherwise how long to wait before booting again."""

    status: BootPolicy | None
    interval_s: int

    @property
    def accepted(self) -> bool:
        return self.status is BootPolicy.ACCEPTED


@dataclass(frozen=True)
class StartResult:
    transaction_id: int
    status: AuthStatus


# `close_lost_stops` with no grace also takes a connector freed this very instant.
EPSILON = timedelta(microseconds=1)

# A car in these states has stopped drawing power while still plugged in.
IDLE_STATES = frozenset({ConnectorStatus.SUSPENDED_EV, ConnectorStatus.FINISHING})
# A report that a car is at the connector: only these say a connector reported free is in use again.
IN_USE_STATES = frozenset(
    {
        ConnectorStatus.PREPARING,
        ConnectorStatus.CHARGING,
        ConnectorStatus.SUSPENDED_EV,
        ConnectorStatus.SUSPENDED_EVSE,
        ConnectorStatus.FINISHING,
    }
)

# The kind of security event kept when a charger names a transaction that runs on another charger.
FOREIGN_TRANSACTION = "ForeignTransaction"
# Hosts' notification kinds this service writes.
CHARGER_OFFLINE = "charger_offline"
STOP_LOST = "stop_lost"
STOP_LATE = "stop_late"


@dataclass(frozen=True)
class LateStop:
    """A stop that came after its session was closed: billed in full (`rebilled`: its capture was
    still queued), or its energy above the billed reading left unbilled and reported. `export_wh`
    and `export_p`: a V2G session's export after the credited reading, credited with a rebill or
    else left uncredited."""

    cp_id: str
    session_id: int
    booking_id: int
    register_wh: int
    unbilled_wh: int
    unbilled_p: int
    rebilled: bool = False
    export_wh: int = 0
    export_p: int = 0


# The transactionId we answer with when we refuse a start: the charger is told the tag is invalid.
REFUSED_TRANSACTION_ID = 0


class ChargingService:
    def __init__(
        self,
        store: Store,
        settlement: SettlementService,
        bus: MessageBus,
        clock: Clock,
        rules: MarketplaceRules,
        last_seen: LastSeen,
        *,
        allow_unknown: bool = False,
    ) -> None:
        self.store, self.settlement, self.bus, self.clock, self.rules = store, settlement, bus, clock, rules
        self.last_seen = last_seen  # stamps renewed in memory, written behind (adapters/last_seen.py)
        # Development aid: let unregistered chargers boot and talk (nothing they say is stored).
        self.allow_unknown = allow_unknown
        # A process heard nothing before it started: a stop sent while no process was up (a restart)
        # gets a whole grace from the start to be replayed before it is taken as lost.
        self.started_at = clock.now()

    def boot(self, cp_id: str, ocpp_version: OcppVersion) -> BootResult:
        """A BootNotification: an Accepted charger comes online; a Pending or Rejected one stays out
        of service and is told when to boot again."""
        now = self.clock.now()
        try:
            with self.store.transaction() as tx:
                # Written first, then the policy read: the write holds the row, so a policy change
                # racing this boot either commits before the read (seen here, undone below) or after
                # this unit of work (and takes the charger out itself).
                tx.chargers.set_status(cp_id, ChargerStatus.ONLINE, now, ocpp_version=ocpp_version)
                policy = tx.chargers.boot_policy(cp_id)
                if policy is not BootPolicy.ACCEPTED:
                    tx.chargers.set_status(cp_id, ChargerStatus.REGISTERED, now)
        except NotFound:
            self.last_seen.forget(cp_id)
            return BootResult(None, self.rules.heartbeat_interval_s)
        if policy is not BootPolicy.ACCEPTED:
            self.last_seen.forget(cp_id)
            return BootResult(policy, self.rules.boot_retry_interval_s)
        self.last_seen.written(cp_id, now)
        self.bus.publish(ChargerOnline(now, cp_id))
        self.bus.publish(ChargerBooted(now, cp_id, ocpp_version))
        return BootResult(policy, self.rules.heartbeat_interval_s)

    def boot_policy(self, cp_id: str) -> BootPolicy:
        """How the charger is answered now; raises NotFound for an unregistered charger."""
        with self.store.reading() as tx:
            return tx.chargers.boot_policy(cp_id)

    def heartbeat(self, cp_id: str) -> datetime:
        """Raises NotFound for a charger that is not registered (see `_seen`). From a charger marked
        offline it is the sign it is back, as any frame is."""
        now = self.clock.now()
        if self.last_seen.record(cp_id, now):  # known here: no unit of work at all
            return now
        with self._stamping(cp_id) as tx:
            back = self._seen(tx, cp_id, now)
        self._announce_back(back, cp_id, now)
        return now

    def _alive(self, cp_id: str) -> None:
        """Any frame is a sign of life, as a heartbeat is (no unit of work for a charger stamped here
        already). An unregistered charger's frame changes nothing, here as elsewhere."""
        with contextlib.suppress(NotFound):
            self.heartbeat(cp_id)

    def _announce_back(self, back: bool, cp_id: str, now: datetime) -> None:
        if back:
            self.bus.publish(ChargerOnline(now, cp_id))

    # ---- last seen (adapters/last_seen.py) ------------------------------------------------------
    @contextlib.contextmanager
    def _stamping(self, cp_id: str) -> Iterator[UnitOfWork]:
        """A unit of work that may stamp the charger (`_seen`). `_seen` tells memory the stamp is
        written before the unit commits; one that does not commit leaves the charger unknown here,
        so its next frame writes its stamp, and brings it back online, again."""
        try:
            with self.store.transaction() as tx:
                yield tx
        except BaseException:
            self.last_seen.forget(cp_id)
            raise

    def _seen(self, tx: UnitOfWork, cp_id: str, now: datetime) -> bool:
        """Stamp last seen: in memory for a charger known here, otherwise written at once in `tx`,
        which raises NotFound if it is not registered (so it is never remembered as stamped, and
        looked up every time). True when that first stamp found the charger marked offline and
        brought it back online (the caller announces it once `tx` has committed)."""
        if self.last_seen.record(cp_id, now):
            return False
        # Stamped first, then the status read: the stamp holds the row, so a watchdog's offline
        # write it waited on is seen below, not left standing under a stamp kept in memory.
        tx.chargers.touch(cp_id, now)
        status, _ = tx.chargers.status_and_connector(cp_id, 0)
        # Back only from offline, as read: a charger taken out of service meanwhile stays out.
        back = status is ChargerStatus.OFFLINE and tx.chargers.set_status(
            cp_id, ChargerStatus.ONLINE, now, expected=ChargerStatus.OFFLINE
        )
        self.last_seen.written(cp_id, now)
        return back

    def disconnected(self, cp_id: str) -> None:
        self._gone_offline(cp_id, "its connection closed")

    def watchdog(self) -> list[str]:
        """Chargers silent for `offline_after_intervals` heartbeat intervals go OFFLINE (and out of
        search); their hosts are told. Returns the ids marked: a charger heard again after the list
        was read (its stamp committed by another process) is left online, and its host told nothing."""
        self.last_seen.flush()  # the stamps it judges by, all of them
        now = self.clock.now()
        silence = timedelta(seconds=self.rules.heartbeat_interval_s * self.rules.offline_after_intervals)
        cut_off = now - silence
        with self.store.transaction() as tx:
            silent = [c.charge_point_id for c in tx.chargers.silent(cut_off)]
        why = f"nothing heard for {int(silence.total_seconds() // 60)} minutes"
        return [cp_id for cp_id in silent if self._gone_offline(cp_id, why, seen_before=cut_off)]

    def _gone_offline(self, cp_id: str, why: str, *, seen_before: datetime | None = None) -> bool:
        """Mark the charger offline and tell its host; with `seen_before` (the watchdog), only if it
        has still not been heard since then. True if this call marked it."""
        now = self.clock.now()
        # Going offline writes its own last seen; back, it is stamped at once.
        heard = self.last_seen.drop(cp_id)
        if seen_before is not None and heard is not None and heard >= seen_before:
            # Heard by this process after the silent list was read, its stamp not yet written
            # (the check in the write below sees only written stamps): it stays online, or comes
            # back if another process marked it offline meanwhile by its older written stamp.
            back = False
            with contextlib.suppress(NotFound), self._stamping(cp_id) as tx:
                back = self._seen(tx, cp_id, heard)  # removed meanwhile: nothing to write
            self._announce_back(back, cp_id, heard)
            return False
        with self.store.transaction() as tx:
            charger = tx.chargers.get(cp_id)
            if charger.status is not ChargerStatus.ONLINE:  # offline already, or never in service
                return False
            # Another process (its watchdog, or a link closing there) may mark it at the same time,
            # or stamp it as heard: only the one that flips the status, checked in the write itself,
            # tells the host.
            if not tx.chargers.set_status(
                cp_id, ChargerStatus.OFFLINE, now, expected=charger.status, seen_before=seen_before
            ):
                return False
            tx.notifications.add(
                charger.host_id,
                CHARGER_OFFLINE,
                f"{charger.title or cp_id} is offline",
                f"Charger {cp_id} went offline at {now:%Y-%m-%d %H:%M} UTC: {why}. "
                "Drivers cannot find or book it until it reconnects.",
                now,
            )
        self.bus.publish(ChargerOffline(now, cp_id))
        return True

    def status(
        self, cp_id: str, connector_no: int, status: ConnectorStatus, reported_at: datetime | None = None
    ) -> None:
        """A StatusNotification; from an OFFLINE charger it is the sign it is back. `reported_at`: the
        charger's own time for the report, if it gave one (else now), placed on our clock by its
        connection (`ocpp.report_clock`: a clock gone back is allowed for). A connector keeps the
        status of its latest report: one older than that (replayed from a queue, or overtaken in
        flight) is logged and changes nothing but the charger's last seen. A connector reported
        Available keeps the report's time, which `start` compares with its start's, placed alike."""
        now = self.clock.now()
        # Untimestamped (1.6 makes it optional), a report is placed when it came: the charger gave
        # no time, 1.6 sends the current status rather than queued history, and a guess would invent
        # an order. A stamp ahead of our clock counts as now, so a charger whose clock ran fast and
        # was set right is not held to its old reports.
        at = now if reported_at is None else min(reported_at, now)
        with self._stamping(cp_id) as tx:
            # The open session comes with the connector: writing the connector's status below
            # changes no session.
            charger_status, connector_id, open_ = tx.sessions.on_connector(cp_id, connector_no)
            back = charger_status is ChargerStatus.OFFLINE and tx.chargers.set_status(
                cp_id, ChargerStatus.ONLINE, now, expected=ChargerStatus.OFFLINE
            )
            if back:
                self.last_seen.written(cp_id, now)
            back = self._seen(tx, cp_id, now) or back
            # Written on a repeat too: its time is what a report overtaken by it is older than.
            if not tx.chargers.set_connector_status(cp_id, connector_no, status, at):
                if connector_id is not None or connector_no == 0:
                    log.info(
                        "%s: %s on connector %d reported at %s is older than its status; not applied",
                        cp_id,
                        status.value,
                        connector_no,
                        at.isoformat(),
                    )
                connector_id = None  # late, or no such connector: nothing below applies
            if status is ConnectorStatus.AVAILABLE and connector_id is not None:
                # Stamped on a repeat too: the report that comes back after an outage is the one a
                # start replayed behind it is older than.
                tx.chargers.mark_available(connector_id, now if reported_at is None else reported_at)
            if open_ is not None and connector_id is not None:
                self._reported(tx, open_, connector_id, status, at, now)
        self._announce_back(back, cp_id, now)

    @staticmethod
    def _reported(
        tx: UnitOfWork,
        open_: SessionRecord,
        connector_id: int,
        status: ConnectorStatus,
        at: datetime,
        now: datetime,
    ) -> None:
        """What a connector's latest status, reported at `at`, says of the session open on it."""
        if status is ConnectorStatus.AVAILABLE:
            # Free with its transaction open: the stop is on its way (or was lost); see
            # `close_lost_stops`. The reading it carries is the one to bill.
            if open_.freed_at is None:
                tx.sessions.mark_freed(open_.session_id, now)
            return
        # Reserved for the next booking, made unavailable or faulted: still no car, still freed. In
        # use, made before the connector was last free (the car's departure): not the car back.
        if open_.freed_at is not None and status in IN_USE_STATES:
            free_at = tx.chargers.available_at(connector_id)
            if free_at is None or at >= min(free_at, now):
                tx.sessions.mark_freed(open_.session_id, None)
        if status in IDLE_STATES and open_.idle_since is None:
            tx.sessions.mark_idle(open_.session_id, now)  # the idle fee clock starts (once)
        elif status is ConnectorStatus.CHARGING and open_.idle_since is not None:
            tx.sessions.mark_idle(open_.session_id, None)

    def close_lost_stops(self, grace: timedelta | None = None) -> list[int]:
        """Sessions whose connector was reported free more than `grace` ago (the rules' lost-stop grace
        by default) and whose stop never came: closed on the last reading we have (what came after
        is unbilled). Nothing while this process is younger than `grace`. Returns their ids."""
        now = self.clock.now()
        grace = timedelta(seconds=self.rules.lost_stop_grace_s) if grace is None else grace
        if now - self.started_at < grace:
            return []
        cutoff = now - grace + EPSILON
        with self.store.reading() as tx:
            lost = [(s, tx.sessions.charger_of(s.session_id)) for s in tx.sessions.freed_before(cutoff)]
        closed = []
        for session, cp_id in lost:
            if cp_id is None:
                continue
            log.warning(
                "closing session %s: %s reported its connector free and no stop came",
                session.session_id,
                cp_id,
            )
            if not self._stop(
                cp_id,
                session.session_id,
                session.meter_last_wh,
                now,
                lost=True,
                stop_read=False,
                freed_before=cutoff,
            )[1]:
                continue  # its stop came after all and closed it first, or it is in use again
            self.bus.publish(SessionClosedWithoutStop(now, session.session_id, cp_id))
            closed.append(session.session_id)
        return closed

    def _late_stop(
        self,
        tx: UnitOfWork,
        cp_id: str,
        session: SessionRecord,
        register_wh: int,
        now: datetime,
        export_wh: int | None = None,
    ) -> list[LateStop]:
        """A stop whose reading is above the one its stopped session was billed on, or whose
        export register reading (`export_wh`, V2G) is above the one credited: it came after the
        session was closed without it (the lost-stop sweep). Billed on it in full, its export
        credited, while the capture is still queued and untried; else its readings are kept against
        the session and the difference reported as unbilled and uncredited, once per reading (both
        compare-and-sets in the database, so a repeat, or the same stop in two processes, does it
        once)."""
        billed_stop = session.meter_stop_wh
        if billed_stop is None or register_wh < billed_stop or session.billed_wh is None:
            return []
        if not session.closed_lost:
            return []  # stopped by its charger, on that stop's reading: nothing was left behind
        if tx.sessions.awaits_first_reading(session.session_id):
            return []  # its meter start is a placeholder: no reading measures its energy from it
        booking = tx.bookings.get(session.booking_id)
        exported = late_export(tx, booking.booking_id, export_wh)
        export_register = None if exported is None else export_wh
        if register_wh == billed_stop and export_register is None:
            return []  # nothing imported or exported after the readings the close took
        tariff = Tariff(booking.price_per_kwh)
        energy = billed_energy(session.meter_start_wh, register_wh)
        cost = tariff.cost(energy) + session.idle_fee
        capture = tx.outbox.get(capture_key(booking.booking_id))
        # As `reprice_capture` decides: else a Busy answer would repeat at every sending.
        untried = (
            capture is not None
            and capture.status == "pending"
            and not capture.attempts
            and capture.last_error is None
        )
        if (
            untried
            and capture is not None
            and capture.claimed_by is None
            and tx.sessions.rebill(
                session.session_id,
                billed_stop_wh=billed_stop,
                meter_stop_wh=register_wh,
                billed_wh=energy,
                cost=cost,
                at=now,
                export_wh=export_register,
            )
        ):
            if not self.settlement.reprice_capture(tx, booking.booking_id, cost):
                # A worker claimed the capture since we looked: the charger's retry records it.
                raise Busy(f"the capture of session {session.session_id} is being worked", 1.0)
            credited = LateCredit()
            if export_register is not None:
                credited = credit_late_export(tx, booking, export_register, self.clock)
            billed = (
                f"it is billed in full, {energy} Wh."
                if register_wh > billed_stop
                else f"nothing more was delivered, so its bill of {energy} Wh stands."
            )
            tx.notifications.add(  # the host was told it was billed on its last reading
                booking.host_id,
                STOP_LATE,
                f"Session {session.session_id}: its stop came after it was closed",
                f"Charger {cp_id} sent the stop of session {session.session_id} at "
                f"{now:%Y-%m-%d %H:%M} UTC, after it had been closed on {session.billed_wh} Wh and "
                f"before its payment was taken: {billed}"
                f"{_credited(credited)}",
                now,
            )
            return [
                LateStop(
                    cp_id,
                    session.session_id,
                    booking.booking_id,
                    register_wh,
                    0,
                    0,
                    rebilled=True,
                    export_wh=credited.wh,
                    export_p=credited.pence,
                )
            ]
        if not tx.sessions.record_late_stop(
            session.session_id, register_wh, now, export_register, billed_stop_wh=billed_stop
        ):
            # This reading (or a higher one) was kept already; or another process's late stop
            # rebilled the session since it was read (both compare-and-sets failed on the reading
            # billed): decided again on the session as that process left it, never on the stale one.
            fresh = tx.sessions.get(session.session_id)
            if fresh is not None and fresh.meter_stop_wh != billed_stop:
                return self._late_stop(tx, cp_id, fresh, register_wh, now, export_wh)
            return []
        unbilled_wh = register_wh - billed_stop
        unbilled_p = tariff.cost(energy) - tariff.cost(session.billed_wh)
        export_wh_left, export_p_left = (0, 0) if exported is None else exported
        unbilled = (
            f"the {unbilled_wh} Wh delivered since its last reading ({unbilled_p}p) were not billed."
            if unbilled_wh
            else "nothing was delivered since its last reading."
        )
        uncredited = (
            f" The {export_wh_left} Wh exported since ({export_p_left}p) were not credited to the driver."
            if export_wh_left
            else ""
        )
        tx.notifications.add(
            booking.host_id,
            STOP_LATE,
            f"Session {session.session_id}: its stop came after it was closed",
            f"Charger {cp_id} sent the stop of session {session.session_id} at "
            f"{now:%Y-%m-%d %H:%M} UTC, after it had been closed and billed {session.billed_wh} Wh; "
            f"{unbilled}{uncredited}",
            now,
        )
        return [
            LateStop(
                cp_id,
                session.session_id,
                booking.booking_id,
                register_wh,
                unbilled_wh,
                unbilled_p,
                export_wh=export_wh_left,
                export_p=export_p_left,
            )
        ]

    def _report_late(self, late: LateStop) -> None:
        if late.rebilled:
            log.info(
                "session %s: its stop came after it was closed, before its capture; billed to %s Wh, "
                "%s Wh exported since credited (%sp)",
                late.session_id,
                late.register_wh,
                late.export_wh,
                late.export_p,
            )
            self.settlement.queued(late.booking_id)
            return
        log.warning(
            "session %s on %s: its stop came after it was closed and captured; %s Wh (%sp) unbilled, "
            "%s Wh exported (%sp) uncredited",
            late.session_id,
            late.cp_id,
            late.unbilled_wh,
            late.unbilled_p,
            late.export_wh,
            late.export_p,
        )

    def _presented(self, tx: UnitOfWork, id_tag: str, now: datetime) -> _Presented:
        """A token row of this value decides; else a driver's booking id tag is Accepted."""
        token = tx.tokens.by_value(id_tag)
        if token is not None:
            return _Presented(token.driver_id, token.status_at(now), token)
        driver = tx.accounts.driver_by_tag(id_tag)
        if driver is None:
            return _Presented(None, None)
        return _Presented(driver.driver_id, TokenStatus.ACCEPTED)

    def authorize(self, cp_id: str, id_tag: str) -> AuthStatus:
        """See `authorization`; the status only."""
        return self.authorization(cp_id, id_tag).status

    def authorization(self, cp_id: str, id_tag: str) -> TokenAnswer:
        """The token's own status first (`domain.tokens.decide`); an Accepted one is let charge when
        its driver holds a confirmed booking on this charger that has begun, or when the host allows
        walk-in charging here. Raises NotFound for an unregistered charger."""
        self._alive(cp_id)
        now = self.clock.now()
        with self.store.transaction() as tx:
            presented = self._presented(tx, id_tag, now)
            charger = tx.chargers.get(cp_id)
            if charger.boot_policy is not BootPolicy.ACCEPTED:  # out of service: nobody starts here
                return TokenAnswer(AuthStatus.BLOCKED, None, None)
            booked = False
            if presented.driver_id is not None and presented.status is TokenStatus.ACCEPTED:
                for c in charger.connectors:
                    b = tx.bookings.for_start(c.connector_id, presented.driver_id, now)
                    if b is not None and b.starts_at <= now:
                        booked = True
                        break
            walk_in = tx.tokens.walk_in_price(charger.charger_id) is not None
        verdict = decide(
            Situation(presented.status, booked, walk_in=walk_in, master_pass=presented.master_pass)
        )
        token = presented.token
        return TokenAnswer(
            AuthStatus(verdict.status.value),
            None if token is None else token.group_id,
            None if token is None else token.expires_at,
        )

    def start(
        self,
        cp_id: str,
        connector_no: int,
        id_tag: str,
        meter_start: int,
        timestamp: datetime,
        *,
        charger_tx_id: str | None = None,
        meter_start_known: bool = True,
        placed_at: datetime | None = None,
        clock_known: bool = True,
    ) -> StartResult:
        """Open a session for the driver's booking on this connector. `charger_tx_id` is the charger's
        own transaction id (OCPP 2.0.1): stored with the session in the same unit of work, and the key
        that makes a repeated start return the first answer. A 2.0.1 start may come without a meter
        reading (`meter_start_known=False`): the first reading that follows becomes the start.

        The start is decided at its own instant, `timestamp` (now, if the charger's clock is ahead of
        ours): a charger back from offline replays starts it made earlier, whose energy is delivered
        already. So the driver's booking is the one that had begun then (else one begun by now), and
        a walk-in's booking begins then (see `_walk_in`). A replayed start within the driver's
        booking that the no-show sweep expired meanwhile (its charger away past its end) is still
        the driver's: billed on that booking's terms under a booking of its own (`_lapsed`).

        `placed_at`: that instant on our clock, where the charger's clock is known to be off
        (`ocpp.report_clock`); `timestamp` stays the start's own, which a start sent again repeats.
        `clock_known=False`: its link has not yet said where the charger's clock is (no status report
        on it), so the start is not compared with the connector's free report, placed by an earlier
        link: it is a new session, which the next free report frees (see `_over_already`), and the
        charger is asked for that report at once (`ConnectorStatusWanted`)."""
        start = partial(
            self._start,
            cp_id,
            connector_no,
            id_tag,
            meter_start,
            timestamp,
            charger_tx_id=charger_tx_id,
            meter_start_known=meter_start_known,
            placed_at=placed_at,
            clock_known=clock_known,
        )
        try:
            result = start()
        except StartTaken:
            # The same start, sent again on another link, committed after this one looked for it,
            # and this one was not refused (a replayed walk-in, say): rolled back, it is decided
            # again, and finds that start as a retry does.
            result = start()
        if not clock_known and result.status is AuthStatus.ACCEPTED:
            # Without a status on its link the start cannot be placed against the free report: the
            # connector's status now says whether its car is still there. A start sent again asks
            # too: the request behind its first answer may have died with the process.
            self.ask_connector_status(cp_id, connector_no)
        return result

    def ask_connector_status(self, cp_id: str, connector_no: int) -> None:
        """Ask the charger for a connector's status (`ConnectorStatusWanted`), after a start on a
        link that has not placed the charger's clock."""
        self.bus.publish(ConnectorStatusWanted(self.clock.now(), cp_id, connector_no))

    def _start(
        self,
        cp_id: str,
        connector_no: int,
        id_tag: str,
        meter_start: int,
        timestamp: datetime,
        *,
        charger_tx_id: str | None = None,
        meter_start_known: bool = True,
        placed_at: datetime | None = None,
        clock_known: bool = True,
    ) -> StartResult:
        """`start`'s decision in its unit of work."""
        self._alive(cp_id)
        now = self.clock.now()
        placed = timestamp if placed_at is None else placed_at
        at = min(placed, now)
        with self.store.transaction() as tx:
            charger = tx.chargers.get(cp_id)
            if charger_tx_id is not None:
                known = tx.sessions.by_charger_transaction(charger.charger_id, charger_tx_id)
                if known is not None:
                    return StartResult(known.session_id, AuthStatus.ACCEPTED)
            connector = next((c for c in charger.connectors if c.connector_no == connector_no), None)
            presented = self._presented(tx, id_tag, now)
            if connector is None or presented.driver_id is None:
                return StartResult(REFUSED_TRANSACTION_ID, AuthStatus.INVALID)
            driver_id = presented.driver_id
            again = tx.sessions.by_start_key(connector.connector_id, id_tag, meter_start, timestamp)
            if again is not None:  # a retried StartTransaction: same answer, nothing new
                return StartResult(again.session_id, AuthStatus.ACCEPTED)
            connector_id = connector.connector_id

            def refused(status: AuthStatus) -> StartResult:
                # The same start sent again on another link (the charger reconnected to another
                # process) may have committed since it was looked for, and be what refuses this one
                # (it took the booking up): its answer is this one's, as a retry's. Looked for again
                # now, each statement reading what has committed.
                same = None
                if charger_tx_id is not None:
                    same = tx.sessions.by_charger_transaction(charger.charger_id, charger_tx_id)
                if same is None:
                    same = tx.sessions.by_start_key(connector_id, id_tag, meter_start, timestamp)
                if same is not None:
                    return StartResult(same.session_id, AuthStatus.ACCEPTED)
                return StartResult(REFUSED_TRANSACTION_ID, status)

            if charger.boot_policy is not BootPolicy.ACCEPTED:  # out of service: nobody starts here
                return refused(AuthStatus.BLOCKED)
            booking = tx.bookings.for_start(connector.connector_id, driver_id, at)
            booked = booking is not None and booking.starts_at <= at
            lapsed = None
            if not booked and self._replayed(at, now):
                lapsed = self._lapsed(tx, connector.connector_id, driver_id, at)
                booked = lapsed is not None
            if not booked and at < now:
                booking = tx.bookings.for_start(connector.connector_id, driver_id, now)
                booked = booking is not None and booking.starts_at <= now
            walk_in_price = tx.tokens.walk_in_price(charger.charger_id)
            verdict = decide(
                Situation(
                    presented.status,
                    booked,
                    walk_in=walk_in_price is not None,
                    master_pass=presented.master_pass,
                    starting=True,
                )
            )
            if not verdict.accepted:
                return refused(AuthStatus(verdict.status.value))
            if verdict.basis is Basis.BOOKING and lapsed is None:
                assert booking is not None
                active = next_status(booking.status, BookingEvent.SESSION_STARTED)
                if tx.bookings.update(booking.booking_id, active, expected=booking.status):
                    if booking.reservation != RESERVATION_NONE:
                        # The driver's start takes the reservation up: the charger holds it no more.
                        tx.bookings.set_reservation(booking.booking_id, RESERVATION_NONE)
                elif self._replayed(at, now):
                    # Changed since read: the sweep in another process may have just expired it.
                    # A replayed start within it is the driver's still, as if it had come after.
                    lapsed = self._lapsed(tx, connector.connector_id, driver_id, at)
                    if lapsed is None:
                        return refused(AuthStatus.BLOCKED)
                else:
                    return refused(AuthStatus.BLOCKED)  # cancelled meanwhile
            if verdict.basis is Basis.BOOKING and lapsed is not None:
                # The charge belongs to the driver's booking, expired while the charger was away:
                # that booking's end stands (its hold released or its fee taken), and the energy is
                # billed on its terms under a booking of its own, charged at the end as a walk-in's.
                late = self._walk_in(
                    tx,
                    connector.connector_id,
                    driver_id,
                    lapsed.price_per_kwh,
                    at,
                    now,
                    length=lapsed.ends_at - at,
                    max_energy_wh=lapsed.max_energy_wh,
                )
                if late is None:
                    return refused(AuthStatus.BLOCKED)
                booking = late
            elif verdict.basis is not Basis.BOOKING:
                assert walk_in_price is not None
                walk_in = self._walk_in(tx, connector.connector_id, driver_id, walk_in_price, at, now)
                if walk_in is None:
                    # Someone's booking falls within the walk-in's time: the connector is not free.
                    return refused(AuthStatus.BLOCKED)
                booking = walk_in
            assert booking is not None
            session_id = tx.sessions.add(
                booking_id=booking.booking_id,
                connector_id=connector.connector_id,
                id_tag=id_tag,
                started_at=timestamp,
                meter_start_wh=meter_start,
            )
            if charger_tx_id is not None:
                tx.sessions.link_charger_transaction(
                    session_id, charger.charger_id, charger_tx_id, meter_start_pending=not meter_start_known
                )
            if clock_known and self._over_already(tx, connector, placed):
                tx.sessions.mark_freed(session_id, now)
        self.bus.publish(SessionStarted(now, session_id, booking.booking_id))
        return StartResult(session_id, AuthStatus.ACCEPTED)

    @staticmethod
    def _over_already(tx: UnitOfWork, connector: ConnectorView, timestamp: datetime) -> bool:
        """Whether a start arriving now belongs to a session already over: the connector's latest
        report is Available, and later than the start (both in the charger's own time, when the
        report gave one). A charger back from offline may report its connectors before replaying its
        queue, so a session that ended while it was away starts after the free report, its stop
        behind it or lost. It is freed from now, so that stop gets the whole grace. A later report
        of the connector in use (Charging, Occupied) may be this session's: it stays open, and the
        next Available frees it; a later Reserved, Unavailable or Faulted brought no car. A start
        later than the free report is a new session."""
        # Read again, not taken from `connector`: the booking or walk-in written before this locked
        # the connector's row, so a report committed since the charger was read is seen here, and
        # one still to commit waits and then finds this session open.
        status = tx.chargers.connector_statuses([connector.connector_id]).get(connector.connector_id)
        if status in IN_USE_STATES:
            return False
        reported_free = tx.chargers.available_at(connector.connector_id)
        return reported_free is not None and timestamp < reported_free

    def _replayed(self, at: datetime, now: datetime) -> bool:
        """A start older than `past_start_tolerance_s`: the charger made it offline and tells us now."""
        return at < now - timedelta(seconds=self.rules.past_start_tolerance_s)

    def _lapsed(
        self, tx: UnitOfWork, connector_id: int, driver_id: int, at: datetime
    ) -> BookingRecord | None:
        """The driver's booking on this connector that held `at` and has since expired as a
        no-show: the expiry judged it without the start its offline charger was keeping."""
        b = tx.bookings.for_start(connector_id, driver_id, at, BookingStatus.EXPIRED)
        return b if b is not None and b.starts_at <= at else None

    def _walk_in(
        self,
        tx: UnitOfWork,
        connector_id: int,
        driver_id: int,
        price_per_kwh: int,
        at: datetime,
        now: datetime,
        *,
        length: timedelta | None = None,
        max_energy_wh: int | None = None,
    ) -> BookingRecord | None:
        """The booking a walk-in charges under, made as it starts: the connector from the start's own
        instant `at` for at most `walk_in_minutes` and `walk_in_max_energy_wh`, at the host's walk-in
        price, without a hold (its cost is charged at the end: `SettlementService`). None (refused)
        when another live booking overlaps that time, unless the start is a replay from the
        charger's offline queue (older than `past_start_tolerance_s`): that one has charged already,
        and keeps to the free time (`domain.booking.walk_in_period`). The session's stop shortens
        it, as a booking's. `length` and `max_energy_wh` replace the walk-in rules' for a late
        start on an expired booking's terms."""
        period = walk_in_period(
            at,
            timedelta(minutes=self.rules.walk_in_minutes) if length is None else length,
            tx.bookings.held_periods(connector_id, at),
            replayed=self._replayed(at, now),
        )
        if period is None:
            return None
        try:
            booking_id = tx.bookings.add(
                driver_id=driver_id,
                connector_id=connector_id,
                starts_at=period[0],
                ends_at=period[1],
                max_energy_wh=self.rules.walk_in_max_energy_wh if max_energy_wh is None else max_energy_wh,
                price_per_kwh=price_per_kwh,
                hold_amount=WALK_IN_HOLD,
                created_at=now,
                fencing_token=None,
            )
        except BookingConflict:  # not on a store that holds the connector while it reads its bookings
            return None
        active = next_status(BookingStatus.REQUESTED, BookingEvent.WALK_IN)
        tx.bookings.update(booking_id, active, expected=BookingStatus.REQUESTED)
        return tx.bookings.get(booking_id)

    def session_for_charger_tx(self, cp_id: str, charger_tx_id: str) -> SessionRecord | None:
        """The session a charger's own (OCPP 2.0.1) transaction id maps to, if we opened one."""
        with self.store.reading() as tx:
            return tx.sessions.by_charger_transaction(tx.chargers.get(cp_id).charger_id, charger_tx_id)

    def charger_tx_id(self, session_id: int) -> str | None:
        """The charger's own transaction id for one of our sessions (None for OCPP 1.6 sessions)."""
        with self.store.reading() as tx:
            return tx.sessions.charger_transaction_id(session_id)

    def open_session_on(self, cp_id: str, connector_no: int) -> SessionRecord | None:
        with self.store.reading() as tx:
            charger = tx.chargers.get(cp_id)
            connector = next((c for c in charger.connectors if c.connector_no == connector_no), None)
            return None if connector is None else tx.sessions.open_on(connector.connector_id)

    def only_connector(self, cp_id: str) -> int | None:
        """The connector number of a single-connector charger (None when it has several)."""
        with self.store.reading() as tx:
            connectors = tx.chargers.get(cp_id).connectors
        return connectors[0].connector_no if len(connectors) == 1 else None

    def connector_of_charger_tx(self, cp_id: str, charger_tx_id: str) -> int | None:
        """The connector number an event naming no EVSE is about: the charger's one connector, else
        the connector of the session its (OCPP 2.0.1) transaction id maps to (None: neither)."""
        with self.store.reading() as tx:
            charger = tx.chargers.get(cp_id)
            if len(charger.connectors) == 1:
                return charger.connectors[0].connector_no
            session = tx.sessions.by_charger_transaction(charger.charger_id, charger_tx_id)
        if session is None:
            return None
        return next(
            (c.connector_no for c in charger.connectors if c.connector_id == session.connector_id), None
        )

    def departed(self, cp_id: str, session_id: int, reported_at: datetime) -> None:
        """A 2.0.1 TransactionEvent saying the session's EV has left (triggerReason EVDeparted,
        stamped `reported_at`): it counts as a report of the connector free, as an Available does:
        the session is freed (its stop awaited, else closed as lost) and a start older than it is
        over, unless a later report of the connector stands. The status itself is left as the
        charger reports it: its EVSE holds the open transaction, so no new driver can start yet."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            session = tx.sessions.get(session_id)
            if session is None or session.status is not SessionStatus.CHARGING:
                return
            connectors = tx.chargers.get(cp_id).connectors
            connector = next((k for k in connectors if k.connector_id == session.connector_id), None)
            if connector is None:
                return
            # Placed by its own time, as `status` places a report, but not a status report itself: a
            # status report made before it and arriving after is still the connector's status (an
            # in-use one then frees nothing back: see `_reported`).
            if not tx.chargers.mark_available(
                connector.connector_id, reported_at, unless_reported_after=min(reported_at, now)
            ):
                log.info(
                    "%s: EV departed from connector %d at %s, before its latest report; not applied",
                    cp_id,
                    connector.connector_no,
                    reported_at.isoformat(),
                )
                return
            if session.freed_at is None:
                tx.sessions.mark_freed(session_id, now)

    def charging_state(self, session_id: int, *, idle: bool) -> None:
        """The car stopped drawing power (the idle fee clock starts, once) or draws again."""
        with self.store.transaction() as tx:
            session = tx.sessions.get(session_id)
            if session is not None and session.status is SessionStatus.CHARGING:
                tx.sessions.mark_idle(session_id, self.clock.now() if idle else None)

    def awaits_first_reading(self, session_id: int) -> bool:
        """True while a session opened without a reading has had none since."""
        with self.store.reading() as tx:
            return tx.sessions.awaits_first_reading(session_id)

    def first_reading(self, session_id: int, register_wh: int) -> None:
        """A reading for a session opened without one: it becomes the meter start (only the first)."""
        with self.store.transaction() as tx:
            tx.sessions.settle_meter_start(session_id, register_wh)

    def event_is_fresh(self, session_id: int, seq_no: int, first_reading_wh: int | None = None) -> bool:
        """Whether no transaction event as high as `seq_no` was applied yet, asked before applying
        one; `event_is_new` records it applied only after, so an event that failed on our side in
        between is applied when the charger sends it again. `first_reading_wh`: the event's earliest
        reading, the meter start of a session opened without one (only the first counts)."""
        if first_reading_wh is None:
            with self.store.reading() as tx:
                before = tx.sessions.charger_seq(session_id)
        else:
            with self.store.transaction() as tx:
                tx.sessions.settle_meter_start(session_id, first_reading_wh)
                before = tx.sessions.charger_seq(session_id)
        return before is None or seq_no > before

    def event_is_new(
        self, cp_id: str, session_id: int, seq_no: int, first_reading_wh: int | None = None
    ) -> bool:
        """Note a transaction event's sequence number; False when one as high was applied (a replay).
        `first_reading_wh`: the event's earliest reading, the meter start of a session opened without one."""
        with self.store.transaction() as tx:
            if first_reading_wh is not None:
                tx.sessions.settle_meter_start(session_id, first_reading_wh)
            before = tx.sessions.charger_seq(session_id)
            fresh = tx.sessions.advance_charger_seq(session_id, seq_no)
        if fresh and before is not None and seq_no > before + 1:
            # Events in between never came: lost, or still queued at the charger. Billing does not
            # depend on them (registers are cumulative), but an operator should know which.
            missing = TransactionEventsMissing(self.clock.now(), cp_id, session_id, before + 1, seq_no)
            self.bus.publish(missing)
        return fresh

    def meter(self, cp_id: str, transaction_id: int, register_wh: int) -> None:
        """A reading for one of this charger's sessions. One naming another charger's session
        changes nothing and is kept as a security event. Raises NotFound for an unregistered charger."""
        now = self.clock.now()
        try:
            with self._stamping(cp_id) as tx:
                back = self._seen(tx, cp_id, now)
                advance = tx.sessions.advance_meter(transaction_id, register_wh, cp_id, now)
        except NotFound:
            self.foreign_transaction(cp_id, transaction_id, "MeterValues")
            raise
        self._announce_back(back, cp_id, now)
        if advance is None:
            # A late or replayed reading for a finished session changes nothing; so does a spoof.
            self.foreign_transaction(cp_id, transaction_id, "MeterValues")
            return
        energy = advance.meter_last_wh - advance.meter_start_wh  # registers only grow
        self.bus.publish(MeterReading(now, transaction_id, advance.booking_id, cp_id, energy))
        if register_wh - advance.meter_start_wh >= advance.max_energy_wh:
            self.bus.publish(EnergyLimitReached(now, cp_id, transaction_id))

    def meter_export(self, cp_id: str, session_id: int, register_wh: int | None, soc_pct: int | None) -> None:
        """A reading of the export register (V2G) and the car's state of charge for one of this
        charger's sessions; one for another charger's session, or a stopped one, changes nothing."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            session = tx.sessions.get(session_id)
            if session is None or session.status is not SessionStatus.CHARGING:
                return
            if self._foreign(tx, cp_id, session_id, "MeterValues"):
                return
            record_export(tx, session.booking_id, register_wh, soc_pct, now)

    def stops_due(self, cp_id: str) -> list[EnergyLimitReached]:
        """Sessions on this charger that used the energy their booking holds and are still open:
        the stop was due and may never have reached the charger, so it is asked again when it
        connects. Raises NotFound for an unregistered charger."""
        with self.store.reading() as tx:
            return self.stops_due_in(tx, tx.chargers.get(cp_id))

    def stops_due_in(self, tx: UnitOfWork, charger: ChargerView) -> list[EnergyLimitReached]:
        """The same, read in the caller's unit of work (see `owed_commands.due_at_connect`)."""
        now = self.clock.now()
        due = []
        for connector in charger.connectors:
            session = tx.sessions.open_on(connector.connector_id)
            if session is None:
                continue
            limit = tx.bookings.get(session.booking_id).max_energy_wh
            if session.meter_last_wh - session.meter_start_wh >= limit:
                due.append(EnergyLimitReached(now, charger.charge_point_id, session.session_id))
        return due

    def foreign_transaction(self, cp_id: str, session_id: int, action: str) -> bool:
        """If `session_id` runs on another charger than `cp_id`, keep a security event for the
        operator and say so. Whoever sent it, registered or not, changes nothing of that session."""
        with self.store.transaction() as tx:
            return self._foreign(tx, cp_id, session_id, action)

    def _foreign(self, tx: UnitOfWork, cp_id: str, session_id: int, action: str) -> bool:
        owner = tx.sessions.charger_of(session_id)
        if owner is None or owner == cp_id:
            return False
        tx.security.record(
            cp_id,
            FOREIGN_TRANSACTION,
            f"{action} named transaction {session_id}, which runs on another charger",
            self.clock.now(),
        )
        log.warning("%s: %s named transaction %s of another charger; ignored", cp_id, action, session_id)
        return True

    def foreign_charger_transaction(self, cp_id: str, charger_tx_id: str, action: str) -> bool:
        """A 2.0.1 event for a transaction this charger (registered or not) never opened: if another
        charger is charging under that id, keep a security event and say so. It changes nothing."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            try:
                own: int | None = tx.chargers.get(cp_id).charger_id
            except NotFound:
                own = None
            if tx.sessions.running_elsewhere(charger_tx_id, own) is None:
                return False
            tx.security.record(
                cp_id,
                FOREIGN_TRANSACTION,
                f"{action} named transaction {charger_tx_id[:40]!r}, which runs on another charger",
                now,
            )
        log.warning("%s: %s named another charger's transaction %.40r; ignored", cp_id, action, charger_tx_id)
        return True

    def stop(
        self,
        cp_id: str,
        transaction_id: int,
        meter_stop: int,
        timestamp: datetime,
        *,
        lost: bool = False,
        start_read: bool | None = None,
        stop_read: bool = True,
        export_wh: int | None = None,
        placed_at: datetime | None = None,
    ) -> AuthStatus:
        """Stop is durable before we answer; settlement follows. A repeated stop changes nothing, and
        so does a stop naming another charger's transaction (Invalid, and a security event). `lost`:
        we close it ourselves, the charger's stop never came; the host is told in the same unit.
        `stop_read`: the stop carried an energy reading (`meter_stop` is one). `start_read`: the
        start register had been read before the stop (None: as the store knows it). A session
        billed without both is flagged unmetered, on its receipt and for the operator.
        `export_wh`: the stop's reading of the export register (V2G), which only a late stop needs
        (a session's own readings are recorded before its stop, `meter_export`). `placed_at`: the
        stop's instant on our clock, where the charger's clock is known to be off
        (`ocpp.report_clock`): its booking ends then; the session keeps the charger's own stamps."""
        stopped = self._stop(
            cp_id,
            transaction_id,
            meter_stop,
            timestamp,
            lost=lost,
            start_read=start_read,
            stop_read=stop_read,
            export_wh=export_wh,
            placed_at=placed_at,
        )
        return stopped[0]

    def _stop(
        self,
        cp_id: str,
        transaction_id: int,
        meter_stop: int,
        timestamp: datetime,
        *,
        lost: bool,
        start_read: bool | None = None,
        stop_read: bool = True,
        freed_before: datetime | None = None,
        export_wh: int | None = None,
        placed_at: datetime | None = None,
    ) -> tuple[AuthStatus, bool]:
        """`stop`, also saying whether this call is the one that stopped (and billed) the session.
        `lost`: closed by the sweep, only if still freed before `freed_before`, on its last reading.
        A measured stop for a session stopped already is a late stop (`_late_stop`)."""
        late: list[LateStop] = []
        result = self._stop_once(
            cp_id,
            transaction_id,
            meter_stop,
            timestamp,
            lost=lost,
            start_read=start_read,
            stop_read=stop_read,
            freed_before=freed_before,
            late=late,
            export_wh=export_wh,
            placed_at=placed_at,
        )
        for found in late:  # committed: said once, whichever process or retry recorded it
            self._report_late(found)
        return result

    def _stop_once(
        self,
        cp_id: str,
        transaction_id: int,
        meter_stop: int,
        timestamp: datetime,
        *,
        lost: bool,
        start_read: bool | None,
        stop_read: bool,
        freed_before: datetime | None,
        late: list[LateStop],
        export_wh: int | None = None,
        placed_at: datetime | None = None,
    ) -> tuple[AuthStatus, bool]:
        self._alive(cp_id)
        now = self.clock.now()
        with self.store.transaction() as tx:
            session = tx.sessions.get(transaction_id)
            if session is None or self._foreign(tx, cp_id, transaction_id, "StopTransaction"):
                return AuthStatus.INVALID, False
            if session.status is SessionStatus.STOPPED:
                if stop_read and not lost:
                    late.extend(self._late_stop(tx, cp_id, session, meter_stop, now, export_wh))
                return AuthStatus.ACCEPTED, False
            if lost:
                # The sweep read it in a transaction of its own: an in-use report since keeps it
                # open, and a reading since is the last one.
                if session.freed_at is None or (
                    freed_before is not None and session.freed_at >= freed_before
                ):
                    return AuthStatus.ACCEPTED, False
                meter_stop = max(meter_stop, session.meter_last_wh)
            booking = tx.bookings.get(session.booking_id)
            try:
                energy = billed_energy(session.meter_start_wh, meter_stop)
            except DomainError:
                log.warning("charger %s sent meterStop below meterStart for tx %s", cp_id, transaction_id)
                energy, meter_stop = 0, session.meter_start_wh
            idle_fee = self.rules.idle_fee(session.idle_since, now)
            cost = Tariff(booking.price_per_kwh).cost(energy) + idle_fee
            if start_read is None:
                start_read = not tx.sessions.awaits_first_reading(transaction_id)
            flagged = unmetered(
                start_read=start_read,
                stop_read=stop_read,
                register_moved=max(meter_stop, session.meter_last_wh) > session.meter_start_wh,
            )
            # The status read above may be stale (another process's stop or lost-stop close can
            # commit meanwhile): only the stop that flips the session bills it and queues its capture.
            if not tx.sessions.stop(
                transaction_id,
                stopped_at=timestamp,
                meter_stop_wh=meter_stop,
                billed_wh=energy,
                cost=cost,
                idle_fee=idle_fee,
                unmetered=flagged,
                closed_lost=lost,
            ):
                # Another process closed it meanwhile (the lost-stop sweep): this stop came late.
                closed = tx.sessions.get(transaction_id) if stop_read and not lost else None
                if closed is not None and closed.status is SessionStatus.STOPPED:
                    late.extend(self._late_stop(tx, cp_id, closed, meter_stop, now, export_wh))
                return AuthStatus.ACCEPTED, False
            if lost:
                tx.notifications.add(
                    booking.host_id,
                    STOP_LOST,
                    f"Session {transaction_id} closed without its charger's stop",
                    f"Charger {cp_id} reported the connector free and never sent the stop of session "
                    f"{transaction_id}; it was closed at {now:%Y-%m-%d %H:%M} UTC and billed "
                    f"{energy} Wh, its last reading.",
                    now,
                )
            # The connector is free again from the stop (its own instant on our clock, replayed from
            # an offline queue or not; now at the latest): shorten the booking so others can book the rest. A
            # stop within the instant of the booking's start (a walk-in plugged in and out at once)
            # leaves it the least period, never its whole time.
            placed = timestamp if placed_at is None else placed_at
            ends_at = min(booking.ends_at, max(min(placed, now), booking.starts_at + LEAST_PERIOD))
            tx.bookings.update(
                booking.booking_id,
                next_status(BookingStatus(booking.status), BookingEvent.SESSION_STOPPED),
                ends_at=ends_at,
            )
            # The capture commits with the stop (transactional outbox): neither without the other.
            self.settlement.queue_capture(tx, booking.booking_id, cost)
            # So does a V2G export's credit, from the export register (never netted with import).
            credit_export(tx, booking, self.clock)
        failpoint("stop-committed")
        if flagged:
            log.warning(
                "session %s on %s was billed %s Wh without a meter measurement; check the charger's "
                "metering settings",
                transaction_id,
                cp_id,
                energy,
            )
            self.bus.publish(SessionUnmetered(now, transaction_id, booking.booking_id, cp_id, energy))
        self.bus.publish(SessionStopped(now, transaction_id, booking.booking_id, energy, cost))
        self.settlement.queued(booking.booking_id)
        return AuthStatus.ACCEPTED, True


def _credited(credited: LateCredit) -> str:
    """What a rebilled late stop's notice says of the export after the close."""
    if credited.wh:
        return (
            f" The {credited.wh} Wh exported after its last reading are credited to the driver "
            f"({credited.pence}p)."
        )
    if credited.below_a_penny_wh:
        return (
            f" The {credited.below_a_penny_wh} Wh exported after its last reading are worth less "
            "than a penny: they are credited when a later reading makes them worth one."
        )
    return ""
