"""What a dialect's command handlers may touch of a charger: the narrow port they are bound to.

Both engines' chargers satisfy it (the live `VirtualCharger` and the DES `DesCharger`), so one
table of handlers per OCPP version answers the central system's commands in either engine.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from datetime import datetime
from typing import Any, Protocol

from chargeshare.ocpp import OcppVersion
from chargeshare.services.clock import Clock
from simulators.charger_certificates import ChargerCertificates
from simulators.dialect import Message, QueuedMessage
from simulators.evse import Requested, ResetKind, Transaction, Unlock, VirtualConnector
from simulators.local_auth import LocalAuth
from simulators.settings import SetResult, Setting, Settings
from simulators.smart_charging import Profile, ProfileBook, Purpose
from simulators.station_v201 import StationState


class ChargerPort(Protocol):
    cp_id: str
    clock: Clock
    connectors: dict[int, VirtualConnector]
    settings: Settings
    profiles: ProfileBook
    local_auth: LocalAuth
    station: StationState
    certificates: ChargerCertificates
    firmware_version: str
    queue: list[QueuedMessage]  # transaction messages held for replay, oldest first
    boot_accepted: bool

    @property
    def protocol(self) -> OcppVersion: ...

    def timestamp(self) -> str:
        """Now as this charger says it (its clock may be skewed)."""
        ...

    def transactions(self) -> Iterator[tuple[VirtualConnector, Transaction]]: ...
    def export_energy(self, c: VirtualConnector, tx: Transaction | None) -> None: ...

    # ---- the firmware's operations -------------------------------------------------------------
    def remote_start(
        self,
        connector_no: int | None,
        id_tag: str,
        *,
        remote_start_id: int | None = None,
        profile: Profile | None = None,
    ) -> bool: ...
    def remote_stop(self, tx: Transaction | None) -> bool: ...
    def reserve(
        self, connector_no: int | None, reservation_id: int, id_tag: str, expires_at: datetime
    ) -> str: ...
    def cancel_reservation(self, reservation_id: int) -> bool: ...
    def change_availability(self, connector_no: int, operative: bool) -> str: ...
    def reset(self, kind: ResetKind) -> str: ...
    def trigger(self, what: Requested, connector_no: int | None) -> str: ...
    def unlock(self, connector_no: int, *, stop_transaction: bool) -> Unlock: ...
    def set_profile(self, profile: Profile) -> bool: ...
    def clear_profiles(
        self,
        *,
        profile_id: int | None = None,
        connector_no: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
    ) -> bool: ...
    def composite_schedule(self, connector_no: int, duration_s: int) -> list[tuple[int, int]] | None: ...
    def phases(self, connector_no: int) -> int: ...
    def power_w(self, c: VirtualConnector) -> int: ...
    @property
    def schedule_unit(self) -> str: ...
    def change_setting(self, setting: Setting | None, value: str) -> SetResult: ...

    # ---- what follows an answer ------------------------------------------------------------------
    def follow_up(self, message: Message) -> None:
        """Send `message` once the answer to the command being handled has gone."""
        ...

    async def send_message(self, message: Message) -> None:
        """Send a message now (queued while offline, as any other)."""
        ...

    def transfer_later(
        self, transfer: Coroutine[Any, Any, None], *, not_before: datetime | None = None
    ) -> None:
        """A file transfer, begun once the command's answer has gone and not before `not_before`."""
        ...

    def renew_later(self) -> None:
        """Renew the charger's certificate once the command's answer has gone."""
        ...
