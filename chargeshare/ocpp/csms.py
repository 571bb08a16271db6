"""The handler table for a charger's OCPP version: one place that says which module serves which."""

from __future__ import annotations

from chargeshare.ocpp import V16, VERSIONS, OcppVersion, csms_v16, csms_v201, family
from chargeshare.ocpp.boot_gate import GatedHandlers
from chargeshare.services.charger_reports import ChargerReportsService
from chargeshare.services.charging import ChargingService


def handlers(
    version: OcppVersion,
    charging: ChargingService,
    cp_id: str,
    reports: ChargerReportsService,
    *,
    credentials: str | None = None,
) -> GatedHandlers:
    """What a charger of `version` may send us, behind its link's boot gate (whose `sign_of_life` hears
    its answers to our calls). 2.1 takes 2.0.1's handlers, told its own version.
    `credentials`: the fingerprint its link was opened with (what it asks for is refused once
    they change; see `ChargerReportsService.sign_certificate`)."""
    if version not in VERSIONS:
        raise ValueError(f"no OCPP {version!r} here; one of {', '.join(VERSIONS)}")
    if family(version) == V16:
        return csms_v16.handlers(charging, cp_id, reports, credentials=credentials)
    return csms_v201.handlers(charging, cp_id, reports, version, credentials=credentials)
