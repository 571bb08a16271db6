"""Commands that move files: UpdateFirmware (the charger downloads an image from `location`) and
GetLog (1.6 GetDiagnostics: it uploads a log to `location`). The backend serves both locations
itself (`ChargerFilesService`); any URL the charger can reach works as well. What follows is the
charger's FirmwareStatusNotification and LogStatusNotification (1.6 DiagnosticsStatusNotification),
kept among its reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from chargeshare.ocpp import V16, V201, OcppVersion
from chargeshare.ocpp.commands import CannotSay, ChargerTxLookup, Command, Done, Rejected, Status, _NoDetails
from chargeshare.ocpp.timestamps import format_ts


def _retries(p: dict[str, Any], retries: int | None, interval_s: int | None) -> dict[str, Any]:
    if retries is not None:
        p["retries"] = retries
    if interval_s is not None:
        p["retryInterval"] = interval_s
    return p


@dataclass(frozen=True)
class UpdateFirmware(_NoDetails):
    """Download the image at `location` from `retrieve_at` on, and install it (2.0.1: not before
    `install_at`; a signed image with its `signature` and `signing_certificate`, PEM). 1.6 answers
    without a status (done); 2.0.1 Accepted or AcceptedCanceled (an update under way was cancelled)."""

    location: str
    retrieve_at: datetime
    request_id: int = 1
    retries: int | None = None
    retry_interval_s: int | None = None
    install_at: datetime | None = None
    signature: str | None = None
    signing_certificate: str | None = None

    actions: ClassVar[dict[str, str]] = {V16: "UpdateFirmware", V201: "UpdateFirmware"}
    done: ClassVar[frozenset[Status]] = frozenset({Status.ACCEPTED, Status.ACCEPTED_CANCELED})

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if version == V16:
            if (
                self.install_at is not None
                or self.signature is not None
                or self.signing_certificate is not None
            ):
                raise CannotSay("OCPP 1.6 UpdateFirmware has no install time and no signature")
            p = {"location": self.location, "retrieveDate": format_ts(self.retrieve_at)}
            return _retries(p, self.retries, self.retry_interval_s)
        firmware: dict[str, Any] = {
            "location": self.location,
            "retrieveDateTime": format_ts(self.retrieve_at),
        }
        if self.install_at is not None:
            firmware["installDateTime"] = format_ts(self.install_at)
        if self.signature is not None:
            firmware["signature"] = self.signature
        if self.signing_certificate is not None:
            firmware["signingCertificate"] = self.signing_certificate
        return _retries(
            {"requestId": self.request_id, "firmware": firmware}, self.retries, self.retry_interval_s
        )

    def result(self, version: OcppVersion, answer: dict[str, Any]) -> Done[None] | Rejected:
        if version == V16:
            return Done(Status.ACCEPTED, None)  # its answer is empty
        return super().result(version, answer)


class LogType(StrEnum):
    DIAGNOSTICS = "DiagnosticsLog"
    SECURITY = "SecurityLog"


@dataclass(frozen=True)
class GetLog(Command[str | None]):
    """Upload a log to `location` (1.6 GetDiagnostics, diagnostics only), of what happened between
    `oldest` and `latest`. Done.details: the file name the charger gives it. 1.6 names no file when
    it has nothing to upload: Rejected EmptyResultSet."""

    location: str
    request_id: int = 1
    log_type: LogType = LogType.DIAGNOSTICS
    oldest: datetime | None = None
    latest: datetime | None = None
    retries: int | None = None
    retry_interval_s: int | None = None

    actions: ClassVar[dict[str, str]] = {V16: "GetDiagnostics", V201: "GetLog"}
    done: ClassVar[frozenset[Status]] = frozenset({Status.ACCEPTED, Status.ACCEPTED_CANCELED})

    def payload(self, version: OcppVersion, charger_tx: ChargerTxLookup) -> dict[str, Any]:
        if version == V16:
            if self.log_type is not LogType.DIAGNOSTICS:
                raise CannotSay(
                    "OCPP 1.6 uploads diagnostics only (its security log needs the security extension)"
                )
            p: dict[str, Any] = {"location": self.location}
            if self.oldest is not None:
                p["startTime"] = format_ts(self.oldest)
            if self.latest is not None:
                p["stopTime"] = format_ts(self.latest)
            return _retries(p, self.retries, self.retry_interval_s)
        log: dict[str, Any] = {"remoteLocation": self.location}
        if self.oldest is not None:
            log["oldestTimestamp"] = format_ts(self.oldest)
        if self.latest is not None:
            log["latestTimestamp"] = format_ts(self.latest)
        p = {"log": log, "logType": self.log_type.value, "requestId": self.request_id}
        return _retries(p, self.retries, self.retry_interval_s)

    def result(self, version: OcppVersion, answer: dict[str, Any]) -> Done[str | None] | Rejected:
        if version == V16:
            name = answer.get("fileName")
            if name is None:
                return Rejected(Status.EMPTY_RESULT_SET, "no diagnostics to upload")
            return Done(Status.ACCEPTED, name)
        return super().result(version, answer)

    def details(self, version: OcppVersion, answer: dict[str, Any]) -> str | None:
        return answer.get("filename")
