"""What a charger not accepted at boot may say. A Pending or Rejected charger is out of service: the
backend answers its BootNotification and its Heartbeat (with the time only, nothing stored), and
refuses with SecurityError what would begin charging (Authorize, a transaction's start). Everything
else passes: reports an operator provisioning it may trigger, and the frames that finish what was
already under way (a stop, its readings, a connector freed) must be heard whatever the charger's
standing. The services refuse a start on a charger out of service as well, whatever a gate knows.

Once in service, every frame it sends is a sign of life, as a Heartbeat is (`ChargingService.heartbeat`:
in memory for a charger stamped here already): OCPP's heartbeat interval is one of silence, so a
charger busy with other frames may send none, and one marked offline comes back with whatever it
says next. That includes its answers to our calls (CALLRESULT or CALLERROR), which reach no handler:
the connection hands them to `GatedHandlers.sign_of_life`, judged by the same gate."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from chargeshare.domain.charger import BootPolicy
from chargeshare.domain.errors import NotFound
from chargeshare.ocpp.boot_info import device_of
from chargeshare.ocpp.connection import CallRejected, Handler
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.charger_reports import ChargerReportsService
from chargeshare.services.charging import ChargingService

log = logging.getLogger(__name__)

BOOT = "BootNotification"
HEARTBEAT = "Heartbeat"
# What begins charging; a 2.0.1 TransactionEvent begins it only when its eventType is Started.
BEGINS = frozenset({"Authorize", "StartTransaction"})
TRANSACTION_EVENT = "TransactionEvent"


class BootGate:
    """One connection's view of its charger's boot status: learnt from each boot's answer, or read
    when the connection's first frame is not a boot (a charger reconnecting without one). Out of
    service is read again each time it matters, so a charger accepted meanwhile is let in without
    booting again."""

    def __init__(self, charging: ChargingService, cp_id: str) -> None:
        self.charging, self.cp_id = charging, cp_id
        self.in_service: bool | None = None

    def admits(self) -> bool:
        if self.in_service is not True:
            try:
                self.in_service = self.charging.boot_policy(self.cp_id) is BootPolicy.ACCEPTED
            except NotFound:  # unregistered: what it may do is decided elsewhere
                self.in_service = True
        return self.in_service

    def stamp(self, what: str) -> None:
        """`what` the admitted charger said is a sign of life. A stamp the database cannot take now
        is logged, not raised: the frame's own work stands, and a later frame stamps."""
        try:
            self.charging.heartbeat(self.cp_id)
        except NotFound:
            pass
        except Exception:
            log.warning("%s: could not stamp its %s as a sign of life", self.cp_id, what, exc_info=True)

    def refuse(self, action: str) -> CallRejected:
        return CallRejected(
            "SecurityError", f"{action} refused: charger {self.cp_id} is not accepted by the backend"
        )


def _boot_summary(p: dict[str, Any]) -> str:
    d = device_of(p)
    serial, firmware = d.get("serial", "-"), d.get("firmware", "-")
    return f"{d.get('vendor')} {d.get('model')}, serial {serial}, firmware {firmware}"


class GatedHandlers(dict[str, Handler]):
    """One connection's handlers behind its boot gate, which also judges what reaches no handler."""

    def __init__(self, gate: BootGate, table: Mapping[str, Handler]) -> None:
        super().__init__(table)
        self.gate = gate

    def sign_of_life(self) -> None:
        """The charger answered one of our calls: a sign of life if it is in service, as a frame of
        its own is. Never raises: the answer stands whatever becomes of the stamp."""
        try:
            admitted = self.gate.admits()
        except Exception:
            log.warning("%s: could not tell if its answer is a sign of life", self.gate.cp_id, exc_info=True)
            return
        if admitted:
            self.gate.stamp("answer to our call")


def gated(
    charging: ChargingService, cp_id: str, reports: ChargerReportsService, handlers: dict[str, Handler]
) -> GatedHandlers:
    """`handlers` behind one connection's boot gate."""
    gate = BootGate(charging, cp_id)
    kept: list[bool] = []  # this link's Pending boot is among the charger's reports

    def guard(action: str, inner: Handler) -> Handler:
        def handle(p: dict[str, Any]) -> dict[str, Any]:
            begins = action in BEGINS or (action == TRANSACTION_EVENT and p.get("eventType") == "Started")
            admitted = gate.admits()
            if begins and not admitted:
                raise gate.refuse(action)
            answer = inner(p)
            if admitted:
                # Any frame is a sign of life: a charger busy talking may send no Heartbeat at all
                # (its interval is one of silence). After the handler, so a refused frame changes
                # nothing.
                gate.stamp(action)
            return answer

        return handle

    def boot(p: dict[str, Any]) -> dict[str, Any]:
        answer = handlers[BOOT](p)
        gate.in_service = answer["status"] == BootPolicy.ACCEPTED.value
        if answer["status"] == BootPolicy.PENDING.value and not kept:
            # What the host or an admin looks at before accepting it: once per link, not per retry.
            kept.append(reports.record(cp_id, BOOT, f"Pending: {_boot_summary(p)}", p))
        return answer

    def heartbeat(p: dict[str, Any]) -> dict[str, Any]:
        if not gate.admits():
            return {"currentTime": format_ts(charging.clock.now())}  # nothing stored, not brought online
        return handlers[HEARTBEAT](p)

    out = GatedHandlers(gate, {action: guard(action, inner) for action, inner in handlers.items()})
    out[BOOT], out[HEARTBEAT] = boot, heartbeat
    return out
