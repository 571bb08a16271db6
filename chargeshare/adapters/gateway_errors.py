"""Errors shared by the payment gateway adapters, so services need not import a particular adapter."""

from chargeshare.services.ports import GatewayFailure


class GatewayError(GatewayFailure):
    """The gateway refused an operation (our bug or their outage), as opposed to a card decline."""
