"""The ASGI TLS extension for WebSocket upgrades under uvicorn, which does not fill it in itself: the
charger's verified client certificate reaches the OCPP endpoint in `scope["extensions"]["tls"]`
(`client_cert_chain`, PEM, the leaf first), so security profile 3 can bind it to the charger's id."""

from __future__ import annotations

import ssl
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


def client_certificate(scope: Any) -> bytes | None:
    """The DER client certificate a TLS upgrade carried (already verified by the TLS stack), if any."""
    tls = scope.get("extensions", {}).get("tls")
    chain = tls.get("client_cert_chain") if tls else None
    if not chain:
        return None
    return ssl.PEM_cert_to_DER_cert(chain[0])


class TlsScopeProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with the TLS extension added to each upgrade's scope."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the upgrade was refused outright
        ssl_object = self.transport.get_extra_info("ssl_object")
        if scope is None or ssl_object is None:
            return
        # The app's task was only scheduled by the call above, so it sees the scope completed here.
        der = ssl_object.getpeercert(binary_form=True)
        scope["extensions"]["tls"] = {
            "server_cert": None,
            "client_cert_chain": [] if der is None else [ssl.DER_cert_to_PEM_cert(der)],
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
        }
