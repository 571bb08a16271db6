"""Errors shared by the payment gateway adapters, so services need not import a particular adapter."""

from chargeshare.services.ports import GatewayFailure, HoldExpired, ProviderUnavailable


class GatewayError(GatewayFailure):
    """The gateway refused an operation (our bug or their outage), as opposed to a card decline."""


class GatewayUnavailable(GatewayError, ProviderUnavailable):
    """Could not reach the provider, or it failed on its side (5xx, rate limit): retry later."""


class GatewayHoldExpired(GatewayError, HoldExpired):
    """The provider let the authorisation lapse before we captured it."""
