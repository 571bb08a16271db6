"""The Central System's side of OCPP 1.6J, 2.0.1 and 2.1, sans-I/O: text in, replies and outcomes out."""

from enum import StrEnum


class OcppVersion(StrEnum):
    """An OCPP version the backend speaks, written as everywhere else: the database, scenario files,
    the subprotocol after its "ocpp"."""

    V16 = "1.6"
    V201 = "2.0.1"
    V21 = "2.1"


V16, V201, V21 = OcppVersion.V16, OcppVersion.V201, OcppVersion.V21
VERSIONS = tuple(OcppVersion)

# Newest first: a charger offering several versions gets the newest we speak. 2.1 is a superset of
# 2.0.1 for everything the backend uses, so a charger offering both loses nothing by it.
SUPPORTED_SUBPROTOCOLS = ("ocpp2.1", "ocpp2.0.1", "ocpp1.6")
VERSION_OF_SUBPROTOCOL = {"ocpp1.6": V16, "ocpp2.0.1": V201, "ocpp2.1": V21}


def family(version: str) -> OcppVersion:
    """The version whose message shapes `version` shares for the core: 2.1 says every action the
    backend sends or handles with 2.0.1's names and fields (its schemas differ in optional fields,
    wider limits and longer enums: docs/ocpp21.md), so it takes 2.0.1's path wherever code branches
    on the version; each real difference is handled where it is met."""
    return V201 if version == V21 else OcppVersion(version)
