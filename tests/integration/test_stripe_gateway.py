"""The Stripe gateway over real HTTP, against local stand-ins for Stripe. Nothing leaves 127.0.0.1.

The payment flows run against both stand-ins: localstripe (a PyPI package, run as a subprocess) is an
independent model of Stripe's PaymentIntent state machine, so it checks our requests against someone
else's reading of the API; our own fake (tests/stripe_fake_server.py) adds what localstripe does not
model: idempotency keys, Connect destination charges and fees, and the failed PaymentIntent that
Stripe returns inside a decline.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe

from chargeshare.adapters.gateway_errors import GatewayError, GatewayUnavailable
from chargeshare.adapters.stripe_gateway import (
    DEFAULT_NETWORK_RETRIES,
    DEFAULT_TIMEOUT_S,
    InvalidWebhook,
    StripeGateway,
    verify_webhook,
)
from chargeshare.services.ports import PaymentGateway
from tests.conftest import service_missing
from tests.stripe_fake_server import POLL_S, FakeStripe, RunningFakeStripe

API_KEY = "sk_test_chargeshare"
WEBHOOK_SECRET = "whsec_chargeshare_test"
DECLINING_CARD = "pm_card_chargeCustomerFail"  # Stripe's test card whose charges fail: card_declined
START_TIMEOUT_S = 20.0

# localstripe's own `start()` listens on every interface and pickles its state to a shared /tmp file
# on every write; this runs the same app on loopback only and keeps the state in the process.
LOCALSTRIPE_LAUNCHER = """
import sys
from aiohttp import web
from localstripe import resources, server

resources.store.dump_to_disk = lambda: None

# localstripe predates dynamic payment methods and rejects automatic_payment_methods, which current
# Stripe needs for a server-side confirm. It models cards only, so ignoring the field is faithful.
_create = resources.PaymentIntent._api_create.__func__
resources.PaymentIntent._api_create = classmethod(
    lambda cls, automatic_payment_methods=None, **data: _create(cls, **data)
)

web.run_app(server.app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


@dataclass(frozen=True)
class Server:
    name: str
    base_url: str
    books: FakeStripe | None  # our fake's state, to look at directly; None for localstripe

    def gateway(self, **options: Any) -> StripeGateway:
        return StripeGateway(API_KEY, base_url=self.base_url, max_network_retries=0, **options)

    def intent(self, reference: str) -> dict[str, Any]:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": self.base_url}, max_network_retries=0)
        return client.v1.payment_intents.retrieve(reference).to_dict()

    def captured(self, reference: str) -> int:
        intent = self.intent(reference)
        if self.books is not None:
            return int(intent["amount_received"])
        # localstripe has no amount_received: it captures the charge and refunds the uncaptured rest.
        charge = intent["latest_charge"]
        return int(charge["amount"]) - int(charge["amount_refunded"])


def _key(step: str) -> str:
    """A fresh idempotency key shaped like the settlement service's."""
    return f"booking:{uuid.uuid4().hex}:{step}"


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_answering(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    probe = urllib.request.Request(f"{url}/v1/payment_intents/pi_probe")
    probe.add_header("Authorization", f"Bearer {API_KEY}")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"localstripe exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            opener.open(probe, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer (here a 404) means it is serving
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    pytest.fail(f"localstripe did not answer on {url} within {START_TIMEOUT_S}s")


@pytest.fixture(scope="module")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if importlib.util.find_spec("localstripe") is None:
        service_missing("localstripe", "it is not installed (pip install -e '.[test]')")
    port = _free_loopback_port()
    log = tmp_path_factory.mktemp("localstripe") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", LOCALSTRIPE_LAUNCHER, str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_answering(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def running_fake() -> Iterator[RunningFakeStripe]:
    running = RunningFakeStripe()
    yield running
    running.stop()


@pytest.fixture
def fake(running_fake: RunningFakeStripe) -> Server:
    return Server("fake", running_fake.base_url, running_fake.stripe)


# localstripe runs as a subprocess (a second or so to start): in the full suite, not the quick loop,
# where our fake takes the same flows.
@pytest.fixture(params=[pytest.param("localstripe", marks=pytest.mark.slow), "fake"])
def server(request: pytest.FixtureRequest) -> Server:
    if request.param == "localstripe":
        return Server("localstripe", request.getfixturevalue("localstripe_url"), None)
    running: RunningFakeStripe = request.getfixturevalue("running_fake")
    return Server("fake", running.base_url, running.stripe)


def test_it_fits_the_port() -> None:
    # The assignment is the check: mypy (which covers the tests) compares it with the Protocol.
    gateway: PaymentGateway = StripeGateway(API_KEY, base_url="http://127.0.0.1:9")
    assert isinstance(gateway, StripeGateway)


# --- the payment flows, against both servers -----------------------------------------------------


def test_authorize_holds_the_ceiling_and_capture_takes_the_exact_smaller_amount(server: Server) -> None:
    gateway = server.gateway()
    hold = gateway.authorize(amount=2000, customer="driver:7", idempotency_key=_key("hold"))
    assert hold.approved and hold.reference.startswith("pi_")
    intent = server.intent(hold.reference)
    assert (intent["status"], intent["capture_method"], intent["currency"], intent["amount"]) == (
        "requires_capture",
        "manual",
        "gbp",
        2000,
    )

    gateway.capture(reference=hold.reference, amount=1234, idempotency_key=_key("capture"))

    assert server.intent(hold.reference)["status"] == "succeeded"
    assert server.captured(hold.reference) == 1234


def test_authorize_then_release_cancels_the_hold(server: Server) -> None:
    gateway = server.gateway()
    hold = gateway.authorize(amount=1500, customer="driver:7", idempotency_key=_key("hold"))
    gateway.release(reference=hold.reference, idempotency_key=_key("release"))
    assert server.intent(hold.reference)["status"] == "canceled"
    # A second release under a new key is not a replay: Stripe refuses, and we say so.
    with pytest.raises(GatewayError, match="release"):
        gateway.release(reference=hold.reference, idempotency_key=_key("release"))


def test_a_zero_cost_session_releases_the_whole_hold(server: Server) -> None:
    gateway = server.gateway()
    hold = gateway.authorize(amount=900, customer="driver:7", idempotency_key=_key("hold"))
    gateway.capture(reference=hold.reference, amount=0, idempotency_key=_key("capture"))
    assert server.intent(hold.reference)["status"] == "canceled"


def test_a_declined_card_is_a_refused_hold_not_an_error(server: Server) -> None:
    result = server.gateway(payment_method=DECLINING_CARD).authorize(
        amount=2000, customer="driver:8", idempotency_key=_key("hold")
    )
    assert not result.approved
    assert result.reason.startswith("card_declined")


def test_capturing_more_than_the_hold_is_a_gateway_error(server: Server) -> None:
    gateway = server.gateway()
    hold = gateway.authorize(amount=1000, customer="driver:7", idempotency_key=_key("hold"))
    with pytest.raises(GatewayError):
        gateway.capture(reference=hold.reference, amount=1001, idempotency_key=_key("capture"))
    assert server.intent(hold.reference)["status"] == "requires_capture"  # the hold is untouched


# --- what only our fake models -------------------------------------------------------------------


def test_a_decline_names_the_failed_payment_intent_and_the_issuers_reason(fake: Server) -> None:
    result = fake.gateway(payment_method=DECLINING_CARD).authorize(
        amount=2000, customer="driver:8", idempotency_key=_key("hold")
    )
    assert result.reason == "card_declined: generic_decline"
    assert fake.intent(result.reference)["status"] == "requires_payment_method"  # no money held


def test_the_same_idempotency_key_twice_makes_one_payment_intent(fake: Server) -> None:
    assert fake.books is not None
    gateway = fake.gateway()
    hold_key, capture_key = _key("hold"), _key("capture")
    before = fake.books.intent_count()

    first = gateway.authorize(amount=2000, customer="driver:9", idempotency_key=hold_key)
    again = gateway.authorize(amount=2000, customer="driver:9", idempotency_key=hold_key)
    assert again == first
    assert fake.books.intent_count() == before + 1

    # A retried capture (say the first reply was lost) replays instead of failing as already captured.
    gateway.capture(reference=first.reference, amount=1500, idempotency_key=capture_key)
    gateway.capture(reference=first.reference, amount=1500, idempotency_key=capture_key)
    assert fake.captured(first.reference) == 1500


def test_a_key_reused_for_a_different_amount_is_refused(fake: Server) -> None:
    gateway = fake.gateway()
    key = _key("hold")
    gateway.authorize(amount=2000, customer="driver:9", idempotency_key=key)
    with pytest.raises(GatewayError, match="idempot"):
        gateway.authorize(amount=2500, customer="driver:9", idempotency_key=key)


def test_a_destination_charge_pays_the_host_and_takes_the_fee_on_what_is_captured(fake: Server) -> None:
    gateway = fake.gateway(destination_for=lambda customer, key: "acct_host42", platform_fee_bps=1000)
    hold = gateway.authorize(amount=2000, customer="driver:10", idempotency_key=_key("hold"))
    intent = fake.intent(hold.reference)
    assert intent["transfer_data"] == {"destination": "acct_host42"}
    assert intent["application_fee_amount"] == 200  # provisional, on the ceiling

    gateway.capture(reference=hold.reference, amount=1234, idempotency_key=_key("capture"))

    intent = fake.intent(hold.reference)
    assert (intent["amount_received"], intent["application_fee_amount"]) == (1234, 123)  # 10%, rounded down


def test_without_a_destination_no_connect_fields_are_sent(fake: Server) -> None:
    assert fake.books is not None
    gateway = fake.gateway(destination_for=lambda customer, key: None, platform_fee_bps=1000)
    hold = gateway.authorize(amount=2000, customer="driver:11", idempotency_key=_key("hold"))
    method, path, params = fake.books.requests[-1]
    assert (method, path) == ("POST", "/v1/payment_intents")
    assert "transfer_data" not in params and "application_fee_amount" not in params
    assert params["metadata"] == {"customer": "driver:11"}
    gateway.capture(reference=hold.reference, amount=500, idempotency_key=_key("capture"))
    assert fake.intent(hold.reference)["application_fee_amount"] is None


def test_a_card_that_needs_3ds_is_refused_and_its_payment_intent_cancelled(fake: Server) -> None:
    result = fake.gateway(payment_method="pm_card_authenticationRequired").authorize(
        amount=2000, customer="driver:12", idempotency_key=_key("hold")
    )
    assert (result.approved, result.reason) == (False, "requires_action")
    assert fake.intent(result.reference)["status"] == "canceled"


def test_an_unreachable_stripe_is_a_gateway_error() -> None:
    gateway = StripeGateway(
        API_KEY, base_url=f"http://127.0.0.1:{_free_loopback_port()}", max_network_retries=0
    )
    with pytest.raises(GatewayError, match="no response"):
        gateway.authorize(amount=2000, customer="driver:1", idempotency_key=_key("hold"))


class _HangingStripe(ThreadingHTTPServer):
    """Takes every request and holds it, unanswered, until released: a Stripe that hangs."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HoldRequest)
        self.requests = 0
        self.release = threading.Event()


class _HoldRequest(BaseHTTPRequestHandler):
    server: _HangingStripe

    def do_POST(self) -> None:
        self.server.requests += 1
        self.server.release.wait(60)  # bounded: a test that fails must still end

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_hanging_stripe_is_given_up_on_after_our_timeout_and_not_retried() -> None:
    hanging = _HangingStripe()
    threading.Thread(target=hanging.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True).start()
    try:
        # The default retries: none (the payments outbox retries the step, under the same key).
        gateway = StripeGateway(API_KEY, base_url=f"http://127.0.0.1:{hanging.server_port}", timeout_s=0.2)
        with pytest.raises(GatewayUnavailable, match="no response"):
            gateway.capture(reference="pi_hanging", amount=500, idempotency_key=_key("capture"))
        # It gave up by itself, while Stripe still held the request; and it asked once.
        assert not hanging.release.is_set() and hanging.requests == 1
    finally:
        hanging.release.set()
        hanging.shutdown()
        hanging.server_close()
    assert DEFAULT_TIMEOUT_S < 80 and DEFAULT_NETWORK_RETRIES == 0  # the SDK's own: 80 s, 2 retries


def test_gateway_error_is_still_importable_from_the_simulator() -> None:
    from chargeshare.adapters.payments_sim import GatewayError as SimulatorsGatewayError

    assert SimulatorsGatewayError is GatewayError


# --- webhooks ------------------------------------------------------------------------------------


def _event(type_: str, intent: dict[str, Any]) -> bytes:
    event = {
        "id": f"evt_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": type_,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": intent},
    }
    return json.dumps(event).encode()


def _sign(payload: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """Stripe-Signature as Stripe builds it: HMAC-SHA256 of "{timestamp}.{body}" with the secret."""
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def test_signed_payment_events_are_read_from_the_payment_intent_they_carry(fake: Server) -> None:
    gateway = fake.gateway()
    held = gateway.authorize(amount=2000, customer="driver:13", idempotency_key=_key("hold"))
    payload = _event("payment_intent.amount_capturable_updated", fake.intent(held.reference))
    event = verify_webhook(payload, _sign(payload), WEBHOOK_SECRET)
    assert event is not None
    assert (event.type, event.reference, event.status, event.amount_capturable) == (
        "payment_intent.amount_capturable_updated",
        held.reference,
        "requires_capture",
        2000,
    )

    gateway.capture(reference=held.reference, amount=1234, idempotency_key=_key("capture"))
    payload = _event("payment_intent.succeeded", fake.intent(held.reference))
    event = verify_webhook(payload, _sign(payload), WEBHOOK_SECRET)
    assert event is not None and (event.status, event.amount_received) == ("succeeded", 1234)

    released = gateway.authorize(amount=700, customer="driver:13", idempotency_key=_key("hold"))
    gateway.release(reference=released.reference, idempotency_key=_key("release"))
    payload = _event("payment_intent.canceled", fake.intent(released.reference))
    event = verify_webhook(payload, _sign(payload), WEBHOOK_SECRET)
    assert event is not None and (event.reference, event.status) == (released.reference, "canceled")


def test_an_event_we_do_not_act_on_is_verified_and_ignored() -> None:
    payload = _event("charge.refunded", {"id": "ch_1", "object": "charge"})
    assert verify_webhook(payload, _sign(payload), WEBHOOK_SECRET) is None


INTENT = {"id": "pi_1", "object": "payment_intent", "status": "succeeded", "amount": 500}


@pytest.mark.parametrize(
    ("payload", "header"),
    [
        pytest.param(_event("payment_intent.succeeded", INTENT), "wrong-secret", id="other-secret"),
        pytest.param(_event("payment_intent.succeeded", INTENT), "tampered", id="tampered-body"),
        pytest.param(_event("payment_intent.succeeded", INTENT), "stale", id="replayed-late"),
        pytest.param(_event("payment_intent.succeeded", INTENT), "", id="no-header"),
        pytest.param(b"not json", "valid", id="signed-garbage"),
    ],
)
def test_a_bad_webhook_is_refused_with_a_clear_error(payload: bytes, header: str) -> None:
    headers = {
        "wrong-secret": _sign(payload, secret="whsec_someone_else"),
        "tampered": _sign(payload),
        "stale": _sign(payload, at=int(time.time()) - 3600),
        "": "",
        "valid": _sign(payload),
    }
    body = payload.replace(b"500", b"5") if header == "tampered" else payload
    with pytest.raises(InvalidWebhook, match="Stripe webhook"):
        verify_webhook(body, headers[header], WEBHOOK_SECRET)
