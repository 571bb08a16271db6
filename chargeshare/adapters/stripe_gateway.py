"""Card payments through Stripe behind the PaymentGateway port: manual-capture PaymentIntents in GBP.

A hold is a PaymentIntent created and confirmed with capture_method=manual; capture takes the exact
metered cost and Stripe releases the rest of the authorisation; release cancels the PaymentIntent.
Incremental authorisation is not available to us for UK online card payments (Stripe has listed it
as unavailable where Strong Customer Authentication applies), so we cannot top a hold up mid-session:
the hold is a ceiling (the booking's maximum cost) and settlement captures the exact amount under it.

Money is integer pence throughout, which is also Stripe's unit for GBP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import stripe
from stripe.params import PaymentIntentCaptureParams, PaymentIntentCreateParams

from chargeshare.adapters.gateway_errors import GatewayError, GatewayHoldExpired, GatewayUnavailable
from chargeshare.domain.money import BPS_DENOMINATOR, split_fee
from chargeshare.services.ports import HoldResult

log = logging.getLogger(__name__)

DEFAULT_PAYMENT_METHOD: Final = "pm_card_visa"  # Stripe's always-approved test Visa
# The SDK waits 80 s per request and retries twice: a hanging Stripe would hold a payments worker (or a
# driver's booking request) for minutes. The outbox retries a failed step with backoff, under the same
# idempotency key, so giving up early and not retrying here loses nothing.
DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_NETWORK_RETRIES: Final = 0

DestinationLookup = Callable[[str, str], str | None]
"""(customer, idempotency_key) -> the host's connected account (acct_...), or None for no transfer.

The port does not carry the host, so whoever builds the gateway decides how a hold maps to one."""


class StripeGateway:
    """The PaymentGateway port over Stripe's PaymentIntents API.

    With `destination_for` set, holds become Connect destination charges: the host's account gets
    the captured amount less `application_fee_amount`, our `platform_fee_bps` of it, as one transfer.
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        payment_method: str = DEFAULT_PAYMENT_METHOD,
        destination_for: DestinationLookup | None = None,
        platform_fee_bps: int = 0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_network_retries: int = DEFAULT_NETWORK_RETRIES,
    ) -> None:
        if not 0 <= platform_fee_bps <= BPS_DENOMINATOR:
            raise ValueError(f"platform_fee_bps must be within 0..{BPS_DENOMINATOR}, got {platform_fee_bps}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        # Retries are safe: every call carries an idempotency key, which Stripe replays, not re-runs.
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": base_url} if base_url is not None else None,
            max_network_retries=max_network_retries,
            # requests applies it to the connect and to each read; Stripe's replies are small, so
            # that bounds a call to about this long.
            http_client=stripe.RequestsClient(timeout=timeout_s),
        )
        self.payment_method = payment_method
        self.destination_for = destination_for
        self.platform_fee_bps = platform_fee_bps

    def authorize(self, *, amount: int, customer: str, idempotency_key: str) -> HoldResult:
        if amount <= 0:
            raise GatewayError(f"cannot hold {amount} pence")
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": "gbp",
            "capture_method": "manual",
            "confirm": True,
            "payment_method": self.payment_method,
            # We confirm server-side, with nowhere to send a redirect-based method's customer back to.
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            # Our customer ids ("driver:42") are not Stripe Customer ids; keep ours for reconciliation.
            "metadata": {"customer": customer},
        }
        destination = self.destination_for(customer, idempotency_key) if self.destination_for else None
        if destination is not None:
            params["transfer_data"] = {"destination": destination}
            if self.platform_fee_bps:
                # Provisional: capture restates the fee on the amount actually taken.
                params["application_fee_amount"] = split_fee(amount, self.platform_fee_bps).platform_fee
        try:
            intent = self._client.v1.payment_intents.create(params, {"idempotency_key": idempotency_key})
        except stripe.CardError as exc:
            return HoldResult(False, _declined_intent(exc), _decline_reason(exc))
        except stripe.StripeError as exc:
            raise _refused("authorize", customer, exc) from exc
        if intent.status == "requires_capture":
            return HoldResult(True, intent.id)
        # Typically requires_action (3-D Secure), which a server-side confirm cannot complete. Cancel
        # it, or the driver could still authenticate later and leave a hold no booking knows about.
        self._abandon(intent.id, idempotency_key)
        return HoldResult(False, intent.id, intent.status)

    def capture(self, *, reference: str, amount: int, idempotency_key: str) -> None:
        if amount < 0:
            raise GatewayError(f"cannot capture {amount} pence of {reference}")
        options: stripe.RequestOptions = {"idempotency_key": idempotency_key}
        try:
            if amount == 0:
                # Nothing to take: cancelling is the same money as capturing nothing, without
                # relying on Stripe accepting a zero-amount capture.
                self._client.v1.payment_intents.cancel(reference, options=options)
                return
            params: PaymentIntentCaptureParams = {"amount_to_capture": amount}
            if self.destination_for is not None and self.platform_fee_bps:
                intent = self._client.v1.payment_intents.retrieve(reference)
                if intent.application_fee_amount is not None:
                    # The fee set at authorisation was on the ceiling; charge it on what we take.
                    params["application_fee_amount"] = split_fee(amount, self.platform_fee_bps).platform_fee
            self._client.v1.payment_intents.capture(reference, params, options)
        except stripe.StripeError as exc:
            if exc.code == "payment_intent_unexpected_state" and self._lapsed(reference):
                raise GatewayHoldExpired(f"{reference} was cancelled by Stripe before capture") from exc
            raise _refused("capture", reference, exc) from exc

    def _lapsed(self, reference: str) -> bool:
        """Stripe cancels an uncaptured manual-capture PaymentIntent by itself after its hold lapses."""
        try:
            intent = self._client.v1.payment_intents.retrieve(reference)
        except stripe.StripeError:
            return False
        return intent.status == "canceled" and intent.cancellation_reason == "automatic"

    def release(self, *, reference: str, idempotency_key: str) -> None:
        try:
            self._client.v1.payment_intents.cancel(reference, options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise _refused("release", reference, exc) from exc

    def _abandon(self, reference: str, idempotency_key: str) -> None:
        try:
            self._client.v1.payment_intents.cancel(
                reference, options={"idempotency_key": f"{idempotency_key}:abandon"}
            )
        except stripe.StripeError:
            # The hold was never approved, so nothing is owed either way; a person should look.
            log.warning("could not cancel unapproved PaymentIntent %s", reference, exc_info=True)


def _declined_intent(exc: stripe.CardError) -> str:
    # Stripe returns the failed PaymentIntent inside the error; some servers do not.
    intent = exc.error.payment_intent if exc.error is not None else None
    return intent.id if intent is not None else ""


def _decline_reason(exc: stripe.CardError) -> str:
    code = exc.code or "card_declined"
    decline_code = exc.error.decline_code if exc.error is not None else None
    return f"{code}: {decline_code}" if decline_code and decline_code != code else code


def _refused(action: str, subject: str, exc: stripe.StripeError) -> GatewayError:
    status = exc.http_status if exc.http_status is not None else "no response"
    message = f"Stripe would not {action} {subject} ({status}, {exc.code or 'no code'}): {exc}"
    # Unreachable, rate-limited or failing on Stripe's side: the outbox should retry later.
    transient = isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError) or (
        exc.http_status is not None and exc.http_status >= 500
    )
    return GatewayUnavailable(message) if transient else GatewayError(message)


# --- webhooks -------------------------------------------------------------------------------------

PAYMENT_EVENTS: Final = frozenset(
    {
        "payment_intent.amount_capturable_updated",  # the hold is in place
        "payment_intent.succeeded",  # captured
        "payment_intent.canceled",  # released (by us, or by Stripe when an uncaptured hold expires)
    }
)


class InvalidWebhook(ValueError):
    """The request was not a webhook Stripe signed with our endpoint secret, recently, about a payment."""


@dataclass(frozen=True)
class PaymentEvent:
    event_id: str
    type: str
    reference: str  # the PaymentIntent id, as HoldResult.reference
    status: str
    amount: int
    amount_capturable: int
    amount_received: int


def verify_webhook(
    payload: bytes, sig_header: str, secret: str, *, tolerance: int = stripe.Webhook.DEFAULT_TOLERANCE
) -> PaymentEvent | None:
    """Check the Stripe-Signature header over the raw body and read a PaymentIntent event from it.

    Returns None for a genuine event we do not act on (acknowledge it all the same, or Stripe
    retries it). Raises InvalidWebhook for a bad or stale signature or a malformed body.
    """
    try:
        event: stripe.Event = stripe.Webhook.construct_event(payload, sig_header, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise InvalidWebhook(f"Stripe webhook signature check failed: {exc.user_message or exc}") from exc
    except ValueError as exc:  # signed, but not JSON or not an event
        raise InvalidWebhook(f"Stripe webhook body is not an event: {exc}") from exc
    if event.type not in PAYMENT_EVENTS:
        return None
    intent = event.data.object.to_dict()
    try:
        return PaymentEvent(
            event_id=event.id,
            type=event.type,
            reference=str(intent["id"]),
            status=str(intent["status"]),
            amount=int(intent["amount"]),
            amount_capturable=int(intent.get("amount_capturable") or 0),
            amount_received=int(intent.get("amount_received") or 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidWebhook(f"{event.type} {event.id} does not carry a PaymentIntent: {exc!r}") from exc
