"""What chargers report about themselves: kept as received, folded into operators' views, and acted
on where it concerns our own objects (a reservation's end, a vendor's DataTransfer)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargeshare.domain import charger_reports as fold
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.failpoints import failpoint
from chargeshare.ocpp import phases as ocpp_phases
from chargeshare.ocpp.phases import Wiring
from chargeshare.services.booking import BookingService
from chargeshare.services.clock import Clock
from chargeshare.services.events import CertificateIssued, MessageBus, WiringRose
from chargeshare.services.ports import CertificateAuthority, Store, UnitOfWork
from chargeshare.services.records import ChargerReport, ChargerView

log = logging.getLogger(__name__)

# SecurityLog `source` of what a charger reported itself.
FROM_CHARGER = "charger"
# The units a charger takes charging schedules in, as read from its settings (chargeshare/ocpp/rate_units.py).
RATE_UNITS = "RateUnits"
# The phases its connectors are wired to, as read from its settings (chargeshare/ocpp/phases.py).
PHASES = "Phases"
# The most phases each connector was seen drawing on (chargeshare/ocpp/phases.py, `drawing`): apart
# from what the charger says, so a boot that says nothing never wipes it, and it only ever rises.
PHASES_SEEN = "PhasesSeen"


@dataclass(frozen=True)
class VendorAnswer:
    """A vendor hook's answer to a DataTransfer: Accepted, Rejected or UnknownMessageId, and data."""

    status: str
    data: Any = None


VendorHook = Callable[[str, str | None, Any], VendorAnswer]
"""(charge point id, messageId or None, data) -> the answer. Registered per vendorId."""

UNKNOWN_VENDOR = VendorAnswer("UnknownVendorId")


@dataclass(frozen=True)
class ReportedState:
    """What a charger's reports add up to now."""

    statuses: list[fold.LatestStatus]
    device_model: list[fold.DeviceVariable]
    charging_limits: list[fold.ChargingLimit]
    ev_charging_needs: list[fold.EvChargingNeeds]


# Certificate types a charger may ask us to sign (2.0.1 SignCertificate certificateType): ours is the
# CSMS's own CA; a V2G certificate comes from the ISO 15118 PKI, which we do not run.
CHARGING_STATION_CERTIFICATE = "ChargingStationCertificate"
STALE_LINK = "the charger's credentials changed since it connected: it must connect again"


@dataclass(frozen=True)
class SignAnswer:
    accepted: bool
    reason: str
    code: str = ""  # a refusal's reasonCode (2.0.1 statusInfo, at most 20 characters)


def wiring(body: Mapping[str, Any]) -> Wiring:
    """A kept `Phases` report's wiring (one kept before the switch was read: no switch)."""
    phases = {int(no): int(n) for no, n in body.get("phases", {}).items()}
    return Wiring(phases, switches_3to1=bool(body.get("switches_3to1", False)))


def seen_phases(body: Mapping[str, Any]) -> dict[int, int]:
    """A kept `PhasesSeen` report's {connector number: most phases seen drawing}."""
    return {int(no): int(n) for no, n in body.get("phases", {}).items()}


def rose(before: Mapping[int, int], after: Mapping[int, int], connector_nos: Sequence[int]) -> bool:
    """Whether any of the connectors has more phases in `after` than in `before`."""
    return any(
        ocpp_phases.of_connector(after, no) > ocpp_phases.of_connector(before, no) for no in connector_nos
    )


def known_wiring(reports: Sequence[ChargerReport]) -> tuple[Wiring, bool]:
    """The wiring from a charger's `Phases` and `PhasesSeen` reports: the last declared, with what
    was seen where nothing was declared; and whether it was ever asked (a `Phases` report)."""
    declared = [r for r in reports if r.action == PHASES]
    seen = [r for r in reports if r.action == PHASES_SEEN]
    said = wiring(declared[-1].body) if declared else Wiring()
    return (ocpp_phases.with_seen(said, seen_phases(seen[-1].body)) if seen else said), bool(declared)


class ChargerReportsService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        bookings: BookingService,
        *,
        ca: CertificateAuthority | None = None,
        bus: MessageBus | None = None,
    ) -> None:
        self.store, self.clock, self.bookings = store, clock, bookings
        self.ca, self.bus = ca, bus
        self._vendors: dict[str, VendorHook] = {}

    # ---- what chargers send ----------------------------------------------------------------------
    def record(
        self,
        cp_id: str,
        action: str,
        summary: str,
        body: Mapping[str, Any],
        *,
        reported_at: datetime | None = None,
    ) -> bool:
        """Keep a registered charger's message; an unregistered one's changes nothing (False)."""
        with self.store.transaction() as tx:
            try:
                charger_id = tx.chargers.get(cp_id).charger_id
            except NotFound:
                return False
            tx.reports.add(
                charger_id, action, summary, body, received_at=self.clock.now(), reported_at=reported_at
            )
        return True

    def rate_units(self, cp_id: str) -> frozenset[str] | None:
        """The units ("A", "W") the charger last said it takes charging schedules in (empty: it did
        not say); None when it was never asked, or is not registered. Kept in the store, so every
        process sending it commands reads the same."""
        with self.store.reading() as tx:
            try:
                charger_id = tx.chargers.get(cp_id).charger_id
            except NotFound:
                return None
            said = tx.reports.of(charger_id, (RATE_UNITS,))
        return None if not said else frozenset(said[-1].body.get("units", ()))

    def rate_units_learned(self, cp_id: str, units: frozenset[str]) -> bool:
        """Keep what the charger said, if it differs from what was kept (a report only on a change,
        not at every boot). True when it changed."""
        with self.store.transaction() as tx:
            try:
                charger_id = tx.chargers.get(cp_id).charger_id
            except NotFound:
                return False
            said = tx.reports.of(charger_id, (RATE_UNITS,))
            if said and frozenset(said[-1].body.get("units", ())) == units:
                return False
            summary = "takes schedules in " + (" and ".join(sorted(units)) or "units it does not say")
            body = {"units": sorted(units)}
            tx.reports.add(charger_id, RATE_UNITS, summary, body, received_at=self.clock.now())
        return True

    def phases(self, cp_id: str) -> Wiring | None:
        """The phases the charger last said its connectors are wired to ({connector: phases}, 0 for
        the whole charger; empty: it did not say), with those seen drawing where it said nothing
        (`phases_seen`), and whether it switches three phases to one; None when it was never asked,
        or is not registered. Kept in the store, as the units are."""
        with self.store.reading() as tx:
            try:
                charger_id = tx.chargers.get(cp_id).charger_id
            except NotFound:
                return None
            known, asked = known_wiring(tx.reports.of(charger_id, (PHASES, PHASES_SEEN)))
        return known if asked else None

    def phases_seen(self, cp_id: str, connector_no: int, phases: int) -> bool:
        """A connector seen drawing on `phases` (its per-phase current): kept when more than the
        most seen on it before (one phase is what the unknown is held to anyway). True when kept."""
        if connector_no <= 0 or not 1 < phases <= ocpp_phases.MAX_PHASES:
            return False
        with self.store.transaction() as tx:
            try:
                charger = tx.chargers.get(cp_id)
            except NotFound:
                return False
            reports = tx.reports.of(charger.charger_id, (PHASES, PHASES_SEEN))
            kept = [r for r in reports if r.action == PHASES_SEEN]
            seen = seen_phases(kept[-1].body) if kept else {}
            if seen.get(connector_no, 1) >= phases:
                return False
            seen[connector_no] = phases
            summary = ", ".join(
                f"connector {no}: seen drawing on {n} phases" for no, n in sorted(seen.items())
            )
            body = {"phases": {str(no): n for no, n in sorted(seen.items())}}
            declared = [r for r in reports if r.action == PHASES]
            after = ocpp_phases.with_seen(wiring(declared[-1].body) if declared else Wiring(), seen)
            redecide = self._owe_decision(tx, charger, known_wiring(reports)[0], after)
            tx.reports.add(charger.charger_id, PHASES_SEEN, summary, body, received_at=self.clock.now())
        if redecide:
            self._wiring_rose(cp_id)
        return True

    def _owe_decision(self, tx: UnitOfWork, charger: ChargerView, before: Wiring, after: Wiring) -> bool:
        """Whether the wiring kept rises from `before` to `after`: a connector given more phases has a
        higher minimum and other limits in A than its charger holds, as has one whose charger no
        longer switches three phases to one (and one that now switches may charge on less). If so,
        and the charger is on a limited site, it owes a decision from this unit of work's commit on,
        so a crash before the grid decides again leaves it for the sweep to tell (`resend_owed`).
        Called before the unit of work writes anything: it takes the deciding turn first, as a
        decision and a charger's removal do, so none of them waits on what another holds."""
        switch_changed = before.switches_3to1 != after.switches_3to1
        if not (switch_changed or rose(before, after, [c.connector_no for c in charger.connectors])):
            return False
        tx.grid.deciding()
        plans = tx.grid.plans()
        if any(c.connector_id in plans for c in charger.connectors):
            tx.grid.owe([charger.charger_id], self.clock.now())
        return True

    def _wiring_rose(self, cp_id: str) -> None:
        """The commit kept a wiring that rose: the grid is asked to decide again at once."""
        failpoint("wiring-committed")
        if self.bus is not None:
            self.bus.publish(WiringRose(self.clock.now(), cp_id))

    def connector_numbers(self, cp_id: str) -> tuple[int, ...]:
        """The charger's connectors' numbers (on 2.0.1 its EVSE ids), in order; none when not
        registered."""
        with self.store.reading() as tx:
            try:
                connectors = tx.chargers.get(cp_id).connectors
            except NotFound:
                return ()
        return tuple(sorted(c.connector_no for c in connectors))

    def phases_learned(self, cp_id: str, phases: Mapping[int, int]) -> bool:
        """Keep what the charger said, if it differs from what was kept. True when it changed."""
        with self.store.transaction() as tx:
            try:
                charger = tx.chargers.get(cp_id)
            except NotFound:
                return False
            switches = ocpp_phases.switches(phases)
            reports = tx.reports.of(charger.charger_id, (PHASES, PHASES_SEEN))
            said = [r for r in reports if r.action == PHASES]
            if said and wiring(said[-1].body) == Wiring(phases, switches_3to1=switches):
                return False
            summary = (
                ", ".join(
                    f"{'charger' if no == 0 else f'connector {no}'}: {n} phase{'s' if n > 1 else ''}"
                    for no, n in sorted(phases.items())
                )
                or "phases not said"
            ) + ("; switches 3 to 1 phase" if switches else "")
            body: dict[str, Any] = {"phases": {str(no): n for no, n in sorted(phases.items())}}
            if switches:
                body["switches_3to1"] = True
            seen = [r for r in reports if r.action == PHASES_SEEN]
            after = ocpp_phases.with_seen(wiring(body), seen_phases(seen[-1].body) if seen else {})
            redecide = self._owe_decision(tx, charger, known_wiring(reports)[0], after)
            tx.reports.add(charger.charger_id, PHASES, summary, body, received_at=self.clock.now())
        if redecide:
            self._wiring_rose(cp_id)
        return True

    def security_event(self, cp_id: str, kind: str, detail: str, at: datetime) -> bool:
        """A SecurityEventNotification: kept with the backend's own security events, marked as the
        charger's word, at the charger's time. An unregistered charger's changes nothing (False)."""
        with self.store.transaction() as tx:
            try:
                tx.chargers.get(cp_id)
            except NotFound:
                return False
            tx.security.record(cp_id, kind, detail, at, source=FROM_CHARGER)
        log.info("%s reports security event %s: %s", cp_id, kind, detail)
        return True

    def reservation_ended(
        self, cp_id: str, reservation_id: int, status: str, body: Mapping[str, Any]
    ) -> None:
        """A 2.0.1 ReservationStatusUpdate: acted on (see BookingService), and kept with what was done."""
        try:
            outcome = self.bookings.reservation_ended_on_charger(cp_id, reservation_id, status)
        except NotFound:
            return  # an unregistered charger
        self.record(
            cp_id, "ReservationStatusUpdate", f"reservation {reservation_id} {status}: {outcome}", body
        )

    # ---- DataTransfer ----------------------------------------------------------------------------
    def add_vendor_hook(self, vendor_id: str, hook: VendorHook) -> None:
        """Answer DataTransfer for `vendor_id` with `hook` (one per vendor; a later one replaces it)."""
        self._vendors[vendor_id] = hook

    def data_transfer(self, cp_id: str, vendor_id: str, message_id: str | None, data: Any) -> VendorAnswer:
        """Hand a DataTransfer to its vendor's hook; UnknownVendorId when none is registered, Rejected
        when the hook fails. Kept, with the answer, for a registered charger."""
        hook = self._vendors.get(vendor_id)
        answer = UNKNOWN_VENDOR
        if hook is not None:
            try:
                answer = hook(cp_id, message_id, data)
            except Exception:
                log.exception("the DataTransfer hook for vendor %r failed on %s's message", vendor_id, cp_id)
                answer = VendorAnswer("Rejected")
        body = {"vendorId": vendor_id, "messageId": message_id, "data": data}
        self.record(cp_id, "DataTransfer", f"{vendor_id}/{message_id or '-'}: {answer.status}", body)
        return answer

    def sign_certificate(
        self,
        cp_id: str,
        csr: str,
        certificate_type: str | None,
        body: Mapping[str, Any],
        *,
        credentials: str | None = None,
    ) -> SignAnswer:
        """A charger's SignCertificate: with a CA, its CSR is signed and the chain goes to it
        (`CertificateIssued`, sent as CertificateSigned after this answer). Kept, with the outcome.
        `credentials`: the fingerprint its link was opened with; once its password changes or its
        id is registered again, the link's requests are refused (it must connect again)."""
        answer = self._sign(cp_id, csr, certificate_type, credentials)
        use = certificate_type or CHARGING_STATION_CERTIFICATE
        outcome = "issued" if answer.accepted else f"refused: {answer.reason}"
        self.record(cp_id, "SignCertificate", f"{use} {outcome}", body)
        return answer

    def _sign(
        self, cp_id: str, csr: str, certificate_type: str | None, credentials: str | None
    ) -> SignAnswer:
        if self.ca is None:
            return SignAnswer(False, "no certificate authority", "NoCAConfigured")
        if certificate_type not in (None, CHARGING_STATION_CERTIFICATE):
            return SignAnswer(False, f"no certificate authority for {certificate_type}", "UnsupportedType")

        def current() -> str | None:
            with self.store.reading() as tx:
                try:
                    return tx.chargers.credentials(cp_id).fingerprint
                except NotFound:
                    return None

        now = current()
        if now is None:
            return SignAnswer(False, "unknown charge point", "UnknownStation")
        if credentials is not None and now != credentials:
            return SignAnswer(False, STALE_LINK, "InvalidCredentials")
        try:
            chain = self.ca.sign_request(
                cp_id, csr, still_valid=None if credentials is None else lambda: current() == credentials
            )
        except InvalidRequest as exc:
            if credentials is not None and current() != credentials:
                return SignAnswer(False, STALE_LINK, "InvalidCredentials")  # changed while signing
            return SignAnswer(False, str(exc), "InvalidCSR")
        if self.bus is not None:
            self.bus.publish(CertificateIssued(self.clock.now(), cp_id, chain, certificate_type))
        return SignAnswer(True, "issued")

    # ---- what operators read ---------------------------------------------------------------------
    def reports(self, cp_id: str, actions: Sequence[str] = ()) -> list[ChargerReport]:
        """The charger's messages as received, oldest first. Raises NotFound for an unknown charger."""
        with self.store.reading() as tx:
            return list(tx.reports.of(tx.chargers.get(cp_id).charger_id, actions))

    def reported_state(self, cp_id: str) -> ReportedState:
        """Firmware and log status, device model, charging limits and EV needs, as reported last."""
        reports = self.reports(cp_id)
        return ReportedState(
            statuses=fold.latest_statuses(reports),
            device_model=fold.device_model(reports),
            charging_limits=fold.charging_limits(reports),
            ev_charging_needs=fold.ev_charging_needs(reports),
        )
