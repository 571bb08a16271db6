"""The Central System's side of OCPP 1.6J and 2.0.1, sans-I/O: text in, replies and outcomes out."""

SUPPORTED_SUBPROTOCOLS = ("ocpp2.0.1", "ocpp1.6")
VERSION_OF_SUBPROTOCOL = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}
