"""A small stand-in for Stripe's PaymentIntents API, over real HTTP on 127.0.0.1, for tests.

It speaks Stripe's wire format (form-encoded bodies with bracketed keys, JSON replies, errors as
{"error": {...}} under Stripe's status codes) and keeps the rules our gateway relies on that
localstripe does not model: idempotency keys (replayed, or refused when reused with other
parameters), Connect destination charges with application fees, amount_capturable and
amount_received, and a decline that returns the failed PaymentIntent inside the error.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# Stripe's test PaymentMethods (https://docs.stripe.com/testing) that the tests use.
APPROVED_METHODS = frozenset({"pm_card_visa", "pm_card_mastercard"})
DECLINED_METHODS = frozenset({"pm_card_chargeCustomerFail", "pm_card_visa_chargeDeclined"})
THREE_D_SECURE_METHODS = frozenset({"pm_card_authenticationRequired"})
CANCELABLE = frozenset(
    {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action"}
)
INTENT_PATH = re.compile(r"^/v1/payment_intents/(?P<id>pi_\w+)(?:/(?P<action>capture|cancel))?$")


class StripeFailure(Exception):
    """One Stripe error reply: HTTP status and the body's `error` object."""

    def __init__(self, status: int, type_: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error: dict[str, Any] = {"type": type_, "message": message, **extra}


def invalid(message: str, **extra: Any) -> StripeFailure:
    return StripeFailure(HTTPStatus.BAD_REQUEST, "invalid_request_error", message, **extra)


def parse_form(body: str) -> dict[str, Any]:
    """Stripe's encoding: a[b][c]=v nests dictionaries; list items come as a[0]=v (kept as keys)."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        *parents, leaf = re.findall(r"[^\[\]]+", key) or [key]
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise invalid(f"Invalid parameter {key}")
            node = child
        node[leaf] = value
    return out


def as_int(params: dict[str, Any], name: str, *, default: int | None = None) -> int:
    raw = params.get(name)
    if raw is None:
        if default is None:
            raise invalid(f"Missing required param: {name}.", param=name)
        return default
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
        raise invalid(f"Invalid integer: {raw}", param=name)
    return int(raw)


@dataclass
class FakeStripe:
    """The server's books. Every public method is what one HTTP request does, under one lock."""

    api_key_prefix: str = "sk_test_"
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _replies: dict[str, tuple[str, str, dict[str, Any], int, dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: str
    ) -> tuple[int, dict[str, Any], bool]:
        """Answer one request: (status, JSON body, whether it was an idempotent replay)."""
        with self._lock:
            if not headers.get("authorization", "").startswith(f"Bearer {self.api_key_prefix}"):
                return HTTPStatus.UNAUTHORIZED, _error("invalid_request_error", "Invalid API Key"), False
            try:
                params = parse_form(body)
            except StripeFailure as failure:
                return failure.status, {"error": failure.error}, False
            self.requests.append((method, path, params))
            key = headers.get("idempotency-key")
            if method == "POST" and key is not None and key in self._replies:
                seen_method, seen_path, seen_params, status, reply = self._replies[key]
                if (seen_method, seen_path, seen_params) != (method, path, params):
                    message = (
                        "Keys for idempotent requests can only be used with the same parameters they "
                        "were first used with."
                    )
                    return HTTPStatus.BAD_REQUEST, _error("idempotency_error", message), False
                return status, reply, True
            try:
                status, reply = HTTPStatus.OK, self._route(method, path, params)
            except StripeFailure as failure:
                status, reply = failure.status, {"error": failure.error}
            # Like Stripe, remember what ran (success or decline); a request refused as invalid
            # before it ran is not remembered, so it can be corrected and retried under its key.
            if (
                method == "POST"
                and key is not None
                and status in (HTTPStatus.OK, HTTPStatus.PAYMENT_REQUIRED)
            ):
                self._replies[key] = (method, path, params, status, reply)
            return status, reply, False

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        if path == "/v1/payment_intents" and method == "POST":
            return self._create(params)
        match = INTENT_PATH.match(path)
        if match is None:
            raise StripeFailure(
                HTTPStatus.NOT_FOUND, "invalid_request_error", f"Unrecognized request URL ({path})"
            )
        intent = self.intents.get(match["id"])
        if intent is None:
            raise StripeFailure(
                HTTPStatus.NOT_FOUND,
                "invalid_request_error",
                f"No such payment_intent: '{match['id']}'",
                code="resource_missing",
                param="intent",
            )
        action = match["action"]
        if method == "GET" and action is None:
            return intent
        if method == "POST" and action == "capture":
            return self._capture(intent, params)
        if method == "POST" and action == "cancel":
            return self._cancel(intent, params)
        raise StripeFailure(
            HTTPStatus.NOT_FOUND, "invalid_request_error", f"Unrecognized request URL ({path})"
        )

    def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = as_int(params, "amount")
        if amount < 1:
            raise invalid("This value must be greater than or equal to 1.", param="amount")
        currency = params.get("currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[a-z]{3}", currency):
            raise invalid("Missing required param: currency.", param="currency")
        capture_method = params.get("capture_method", "automatic_async")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise invalid(f"Invalid capture_method: {capture_method}", param="capture_method")
        confirm = params.get("confirm") == "true"
        method = params.get("payment_method")
        if method is not None and method not in APPROVED_METHODS | DECLINED_METHODS | THREE_D_SECURE_METHODS:
            raise invalid(
                f"No such PaymentMethod: '{method}'", code="resource_missing", param="payment_method"
            )
        automatic = params.get("automatic_payment_methods", {})
        if confirm and "return_url" not in params and automatic.get("allow_redirects") != "never":
            # Stripe's rule since dynamic payment methods: a server-side confirm must rule out redirects.
            raise invalid(
                "You must provide a `return_url` when confirming a PaymentIntent with the payment "
                "method type card, or set `automatic_payment_methods[allow_redirects]` to `never`.",
                param="return_url",
            )
        transfer = params.get("transfer_data")
        if transfer is not None and not str(transfer.get("destination", "")).startswith("acct_"):
            raise invalid("transfer_data[destination] must be a connected account", param="transfer_data")
        fee = as_int(params, "application_fee_amount", default=-1)
        if fee != -1 and (transfer is None or not 0 <= fee <= amount):
            raise invalid("application_fee_amount needs a destination and at most the amount")

        intent_id = f"pi_fake{next(self._ids):06d}"
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "application_fee_amount": None if fee == -1 else fee,
            "cancellation_reason": None,
            "capture_method": capture_method,
            "currency": currency,
            "last_payment_error": None,
            "livemode": False,
            "metadata": params.get("metadata", {}),
            "payment_method": method,
            "status": "requires_payment_method" if method is None else "requires_confirmation",
            "transfer_data": None if transfer is None else {"destination": transfer["destination"]},
        }
        self.intents[intent_id] = intent
        if confirm and method is not None:
            self._confirm(intent, method)
        return intent

    def _confirm(self, intent: dict[str, Any], method: str) -> None:
        if method in DECLINED_METHODS:
            intent["status"] = "requires_payment_method"
            intent["last_payment_error"] = {"code": "card_declined", "decline_code": "generic_decline"}
            raise StripeFailure(
                HTTPStatus.PAYMENT_REQUIRED,
                "card_error",
                "Your card was declined.",
                code="card_declined",
                decline_code="generic_decline",
                payment_intent=dict(intent),
            )
        if method in THREE_D_SECURE_METHODS:
            intent["status"] = "requires_action"
            intent["next_action"] = {"type": "use_stripe_sdk"}
        elif intent["capture_method"] == "manual":
            intent["status"], intent["amount_capturable"] = "requires_capture", intent["amount"]
        else:
            intent["status"], intent["amount_received"] = "succeeded", intent["amount"]

    def _capture(self, intent: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        if intent["status"] != "requires_capture":
            raise invalid(
                f"This PaymentIntent could not be captured because it has a status of {intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        amount = as_int(params, "amount_to_capture", default=intent["amount_capturable"])
        if not 1 <= amount <= intent["amount_capturable"]:
            raise invalid(
                "amount_to_capture must be between 1 and amount_capturable", param="amount_to_capture"
            )
        fee = as_int(params, "application_fee_amount", default=-1)
        if fee != -1:
            if intent["transfer_data"] is None or not 0 <= fee <= amount:
                raise invalid("application_fee_amount needs a destination and at most the amount captured")
            intent["application_fee_amount"] = fee
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        return intent

    def _cancel(self, intent: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        if intent["status"] not in CANCELABLE:
            raise invalid(
                f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        intent.update(
            status="canceled", amount_capturable=0, cancellation_reason=params.get("cancellation_reason")
        )
        return intent

    def intent_count(self) -> int:
        """PaymentIntents that exist: create requests that ran, replays excluded."""
        with self._lock:
            return len(self.intents)


def _error(type_: str, message: str) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as Stripe's clients expect

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        url = urlsplit(self.path)
        if method == "GET" and url.query:
            body = url.query
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, reply, replayed = self.server.stripe.handle(method, url.path, headers, body)
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", f"req_fake{id(reply):x}")
        if replayed:
            self.send_header("Idempotent-Replayed", "true")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows failures, not access logs


POLL_S = 0.02


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, stripe: FakeStripe) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)  # loopback only; port 0: the OS picks a free one
        self.stripe = stripe


class RunningFakeStripe:
    """A FakeStripe served on a free loopback port in a background thread; stop() ends it."""

    def __init__(self) -> None:
        self.stripe = FakeStripe()
        self._server = _Server(self.stripe)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host!s}:{port}"
        # stop() waits for the serving loop to notice, up to one poll interval (by default half a second).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_S},
            name="fake-stripe",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
