"""The Central System's side of OCPP 1.6J, 2.0.1 and 2.1, sans-I/O: text in, replies and outcomes out."""

V16, V201, V21 = "1.6", "2.0.1", "2.1"
VERSIONS = (V16, V201, V21)

# Newest first: a charger offering several versions gets the newest we speak. 2.1 is a superset of
# 2.0.1 for everything the backend uses, so a charger offering both loses nothing by it.
SUPPORTED_SUBPROTOCOLS = ("ocpp2.1", "ocpp2.0.1", "ocpp1.6")
VERSION_OF_SUBPROTOCOL = {"ocpp1.6": V16, "ocpp2.0.1": V201, "ocpp2.1": V21}


def family(version: str) -> str:
    """The version whose message shapes `version` shares for the core: 2.1 says every action the
    backend sends or handles with 2.0.1's names and fields (its schemas differ in optional fields,
    wider limits and longer enums: docs/ocpp21.md), so it takes 2.0.1's path wherever code branches
    on the version; each real difference is handled where it is met."""
    return V201 if version == V21 else version
