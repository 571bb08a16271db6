"""Every case, by protocol version, in the order they run."""

from __future__ import annotations

from chargeshare.certify.cases16 import CASES_16
from chargeshare.certify.cases201 import CASES_201
from chargeshare.certify.model import Case, Profile
from chargeshare.ocpp import OcppVersion

ALL_CASES: tuple[Case, ...] = CASES_16 + CASES_201


def cases_for(version: OcppVersion, profiles: set[Profile] | None = None) -> list[Case]:
    """The cases for a version, limited to the chosen profiles (None: all)."""
    return [c for c in ALL_CASES if version in c.versions and (profiles is None or c.profile in profiles)]
