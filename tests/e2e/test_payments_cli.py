"""`chargeshare payments` against a running backend: dead letters during an outage, reconcile, payouts."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import Config, build
from chargeshare.cli.app import app as cli
from chargeshare.domain.accounts import KycStatus
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.services.booking import BookRequest
from chargeshare.services.rules import MarketplaceRules
from tests.cli_runner import CliRunner
from tests.conftest import add_charger

pytestmark = pytest.mark.e2e
runner = CliRunner()


async def test_outage_dead_letter_reconcile_and_payout_over_http() -> None:
    app = build(
        Config(database_url="sqlite://", rules=MarketplaceRules(payment_max_attempts=1), password_hash="fast")
    )
    app.auth.add_admin("ops@operators.example", "ops password 1")
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway)
    charger = add_charger(app, price=40)
    with app.store.reading() as t:
        host_id = t.chargers.by_id(charger).host_id
    driver = app.marketplace.add_driver("D", "TAG1")
    app.bookings.book(BookRequest(driver.driver_id, charger, 1, 60, 10_000))
    tx = app.charging.start("CP1", 1, "TAG1", 0, datetime.now(UTC)).transaction_id
    gateway.down = True
    app.charging.stop("CP1", tx, 5_000, datetime.now(UTC))  # capture fails once: dead-lettered at once
    try:
        async with LoopbackServer(create_api(app)) as server:
            url = f"http://127.0.0.1:{server.port}"

            def invoke(*args: str) -> tuple[int, str]:
                result = runner.invoke(cli, ["payments", *args, "--server", url])
                return result.exit_code, " ".join(result.output.split())

            def login(password: str) -> list[str]:
                return ["--email", "ops@operators.example", "--password", password]

            code, out = await asyncio.to_thread(invoke, "status", *login("not the password"))
            assert code == 2 and "answered 401" in out
            code, out = await asyncio.to_thread(invoke, "status")
            assert code == 2 and "--token" in out
            code, out = await asyncio.to_thread(invoke, "status", *login("ops password 1"))
            assert code == 0 and "capture" in out
            # Each command logs in afresh unless given a token (logins are rate limited per account).
            token = app.auth.login("ops@operators.example", "ops password 1").token

            def run(*args: str) -> tuple[int, str]:
                return invoke(*args, "--token", token)

            code, out = await asyncio.to_thread(run, "status", "--only", "dead", "--json", "-")
            assert code == 0
            (dead,) = json.loads(out)
            assert (dead["step"], dead["amount"], dead["attempts"]) == ("capture", 200, 1)
            assert dead["last_error"].startswith("ProviderUnavailable")
            code, out = await asyncio.to_thread(run, "reconcile")
            assert code == 1 and "dead letters left 1" in out  # the provider is still down
            gateway.down = False
            code, out = await asyncio.to_thread(run, "reconcile", "--json", "-")
            assert code == 0 and json.loads(out) == {
                "done": 1,
                "retried": 0,
                "dead": 0,
                "dead_letters_left": 0,
            }
            code, out = await asyncio.to_thread(run, "payout")
            assert code == 0 and "£1.70 not paid: KYC not verified" in out and "0 hosts paid" in out
            app.hosting.set_kyc(host_id, KycStatus.VERIFIED)
            code, out = await asyncio.to_thread(run, "payout", "--json", "-")
            assert code == 0 and json.loads(out)["paid"] == {str(host_id): 170}  # 200p, 15% fee
        assert gateway.total_captured == 200
    finally:
        app.close()


def test_an_unreachable_backend_is_a_clear_error() -> None:
    result = runner.invoke(cli, ["payments", "status", "--server", "http://127.0.0.1:9", "--token", "t"])
    assert result.exit_code == 3 and "cannot reach the backend" in result.output
