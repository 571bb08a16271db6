"""Deliberately faulty virtual chargers: each breaks one rule, and the certifier must catch it in
exactly the cases written to (the certifier's own mutation test)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chargeshare.ocpp import V16, V21, V201
from chargeshare.ocpp.connection import Outcome
from chargeshare.ocpp.frames import CALL, RemoteProtocolError, check_payload
from simulators.charger import VirtualCharger
from simulators.dialect import Message
from simulators.evse import ResetKind, StopReason, Transaction, VirtualConnector
from simulators.smart_charging import Profile

# The cases that run a charging session from start to stop.
SESSIONS_16 = frozenset({"TC_003", "TC_010", "TC_012", "TC_018", "TC_046"})
SESSIONS_201 = frozenset({"TC_B_12", "TC_E_02", "TC_F_01", "TC_F_03"})


def _status_key(payload: dict[str, Any]) -> str:
    return "status" if "status" in payload else "connectorStatus"


class WrongStatusSequence(VirtualCharger):
    """Reports its connector Available while a transaction is running on it."""

    async def report_status(self, c: VirtualConnector) -> None:
        action, payload = self.dialect.status(c, self._ts())
        if c.transaction is not None:
            payload = {**payload, _status_key(payload): "Available"}
        await self._call(action, payload)


class StopWithoutMeterValue(VirtualCharger):
    """Ends a transaction without its final meter reading (1.6: no meterStop; 2.0.1: no meterValue)."""

    async def _stop_transaction(self, c: VirtualConnector, tx: Transaction, reason: StopReason) -> None:
        action, payload = self.stop_message(c, tx, reason)
        payload = {
            k: v for k, v in payload.items() if k not in ("meterStop", "meterValue", "transactionData")
        }
        if action == "StopTransaction":
            await self.send_unchecked(action, payload)  # the schema requires meterStop: send it anyway
        else:
            await self._call(action, payload)


class IgnoresReservationExpiry(VirtualCharger):
    """Keeps a reservation past its expiry: the connector stays Reserved."""

    async def expire_reservations(self) -> None:
        return None


class PowerRateOnly(VirtualCharger):
    """Not faulty: takes charging schedules in W only, and says so. The certifier must pass it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings.values["rate_units"] = "Power" if self.protocol == V16 else "W"

    def set_profile(self, profile: Profile) -> bool:
        return profile.unit == "W" and super().set_profile(profile)


class ResetWithoutReboot(VirtualCharger):
    """Accepts Reset and carries on as if nothing was asked."""

    def reset(self, kind: ResetKind) -> str:
        return "Accepted"


class MalformedMeterValues(VirtualCharger):
    """Sends readings with the unit glued to the number ("1234 Wh"), which is not a number at all
    (in 2.0.1 that breaks the schema, so those frames go out unchecked)."""

    async def _call(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        queue_if_offline: bool = True,
        on_answer: Callable[[Outcome], None] | None = None,
        if_queued: Callable[[Outcome], None] | None = None,
    ) -> Outcome:
        try:
            check_payload(action, payload, self.protocol, CALL, "-")
        except RemoteProtocolError:
            uid = await self.send_unchecked(action, payload)
            return Outcome(uid, action, payload={})
        return await super()._call(
            action, payload, queue_if_offline=queue_if_offline, on_answer=on_answer, if_queued=if_queued
        )

    def meter_message(self, c: VirtualConnector, tx: Transaction) -> Message:
        action, payload = super().meter_message(c, tx)
        for mv in payload["meterValue"]:
            for sv in mv["sampledValue"]:
                unit = sv.get("unit") or sv.get("unitOfMeasure", {}).get("unit", "Wh")
                sv["value"] = f"{sv['value']} {unit}"
        return action, payload


class WrongStopTransactionId(VirtualCharger):
    """Names the wrong transaction when it stops one."""

    def stop_message(self, c: VirtualConnector, tx: Transaction, reason: StopReason) -> Message:
        action, payload = super().stop_message(c, tx, reason)
        if action == "StopTransaction":
            return action, {**payload, "transactionId": int(payload["transactionId"]) + 1}
        info = payload["transactionInfo"]
        given = str(info["transactionId"])
        other = given[:-1] + ("0" if given[-1] != "0" else "1")  # same length: still within the schema
        return action, {**payload, "transactionInfo": {**info, "transactionId": other}}


VARIANTS: dict[str, type[VirtualCharger]] = {
    "wrong-status-sequence": WrongStatusSequence,
    "stop-without-meter-value": StopWithoutMeterValue,
    "ignores-reservation-expiry": IgnoresReservationExpiry,
    "reset-without-reboot": ResetWithoutReboot,
    "power-rate-only": PowerRateOnly,
    "malformed-meter-values": MalformedMeterValues,
    "wrong-stop-transaction-id": WrongStopTransactionId,
}

# What each variant must fail, and nothing else.
CAUGHT_BY_16: dict[str, frozenset[str]] = {
    "wrong-status-sequence": SESSIONS_16,
    "stop-without-meter-value": SESSIONS_16,
    "ignores-reservation-expiry": frozenset({"TC_047"}),
    "reset-without-reboot": frozenset({"TC_013", "TC_014"}),
    "power-rate-only": frozenset(),
    "malformed-meter-values": SESSIONS_16,
    "wrong-stop-transaction-id": SESSIONS_16,
}


CAUGHT_BY_201: dict[str, frozenset[str]] = {
    "wrong-status-sequence": SESSIONS_201,
    "stop-without-meter-value": SESSIONS_201,
    "ignores-reservation-expiry": frozenset({"TC_H_15"}),
    "reset-without-reboot": frozenset({"TC_B_11", "TC_B_12"}),
    "power-rate-only": frozenset(),
    "malformed-meter-values": SESSIONS_201,
    "wrong-stop-transaction-id": SESSIONS_201,
}
CAUGHT_BY: dict[str, dict[str, frozenset[str]]] = {
    V16: CAUGHT_BY_16,
    V201: CAUGHT_BY_201,
    V21: CAUGHT_BY_201,
}  # 2.1 runs the 2.0.1 cases


def charger_class(variant: str | None) -> type[VirtualCharger]:
    """Our virtual charger, or one of its faulty variants by name."""
    if variant is None:
        return VirtualCharger
    try:
        return VARIANTS[variant]
    except KeyError:
        raise KeyError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}") from None
