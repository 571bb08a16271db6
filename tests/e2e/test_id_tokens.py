"""Id tokens over real loopback WebSockets, in OCPP 1.6 and 2.0.1: Authorize answered with each
status from independent chargers built on the `ocpp` library, a refused token starting nothing and
a walk-in starting a session; the local list installed on our virtual charger through the typed
command registry (SendLocalList Full and Differential, GetLocalListVersion, ClearCache)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201

from chargeshare.bootstrap import App, Config, build
from chargeshare.cli.app import app as cli
from chargeshare.domain.tokens import ListEntry, TokenStatus, TokenType, UpdateType
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp import V16, V21, V201, OcppVersion
from chargeshare.ocpp import commands as cmd
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import SystemClock
from simulators.charger import VirtualCharger
from tests.cli_runner import CliRunner
from tests.conftest import add_charger
from tests.e2e.ocpp_clients import (
    boot16,
    boot21,
    boot201,
    energy201,
    library_cp16,
    library_cp21,
    library_cp201,
    now,
    tx_event,
)

pytestmark = pytest.mark.e2e

VERSIONS = (V16, V201)


@dataclass
class Central:
    app: App
    registry: ChargerRegistry
    port: int

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"


@pytest.fixture
async def central() -> AsyncIterator[Central]:
    app = build(Config(database_url="sqlite://", password_hash="fast"), clock=SystemClock())
    registry = ChargerRegistry(app, call_timeout_s=5)
    try:
        async with LoopbackServer(create_api(app, registry)) as server:
            yield Central(app, registry, server.port)
    finally:
        app.close()


def tokens(app: App, cp_id: str) -> tuple[int, int]:
    """A charger `cp_id` (online once it boots) and a driver ANN (booking tag ANN-TAG) with cards:
    CARD-OK (group FLEET-1), CARD-BLOCKED, CARD-EXPIRED (so set), CARD-LAPSED (expiry passed),
    CARD-INVALID; and BOB (tag BOB-TAG) with a card BOB-CARD and no booking."""
    charger = add_charger(app, cp_id, online=False)
    ann = app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
    bob = app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    app.tokens.add(ann, "CARD-OK", group_id="FLEET-1")
    app.tokens.add(ann, "CARD-BLOCKED", status=TokenStatus.BLOCKED)
    app.tokens.add(ann, "CARD-EXPIRED", status=TokenStatus.EXPIRED)
    app.tokens.add(ann, "CARD-LAPSED", expires_at=app.clock.now() - timedelta(hours=1))
    app.tokens.add(ann, "CARD-INVALID", status=TokenStatus.INVALID, type_=TokenType.KEY_CODE)
    app.tokens.add(bob, "BOB-CARD")
    return charger, ann


# The answer each token gets at a charger where Ann's booking has begun and walk-in is off.
ANSWERS = {
    "ANN-TAG": "Accepted",
    "CARD-OK": "Accepted",
    "CARD-BLOCKED": "Blocked",
    "CARD-EXPIRED": "Expired",
    "CARD-LAPSED": "Expired",
    "CARD-INVALID": "Invalid",
    "NOBODY": "Invalid",
    "BOB-CARD": "Blocked",  # valid, but Bob has no booking here
}


@contextlib.asynccontextmanager
async def library_charger(central: Central, cp_id: str, version: OcppVersion) -> AsyncIterator[Any]:
    if version == V16:
        async with library_cp16(central.ws, cp_id) as cp16:
            assert (await boot16(cp16)).status == "Accepted"
            yield cp16
    else:
        async with library_cp201(central.ws, cp_id) as cp201:
            assert (await boot201(cp201)).status == "Accepted"
            yield cp201


async def authorize(cp: Any, version: OcppVersion, tag: str) -> dict[str, Any]:
    if version == V16:
        info: dict[str, Any] = (await cp.call(call16.Authorize(id_tag=tag))).id_tag_info
        return info
    token = {"id_token": tag, "type": "ISO14443"}
    answer: dict[str, Any] = (await cp.call(call201.Authorize(id_token=token))).id_token_info
    return answer


@pytest.mark.parametrize("version", VERSIONS)
async def test_authorize_answers_each_tokens_status(central: Central, version: OcppVersion) -> None:
    charger, ann = tokens(central.app, "TOK")
    async with library_charger(central, "TOK", version) as cp:
        central.app.bookings.book(BookRequest(ann, charger, 1, 60, 10_000))
        answered = {tag: (await authorize(cp, version, tag))["status"] for tag in ANSWERS}
        assert answered == ANSWERS
        ok = await authorize(cp, version, "CARD-OK")
        if version == V16:
            assert ok["parent_id_tag"] == "FLEET-1"
        else:
            assert ok["group_id_token"] == {"id_token": "FLEET-1", "type": "Central"}
        # The operator blocks Ann's card: the next Authorize says so.
        central.app.tokens.block("CARD-OK")
        assert (await authorize(cp, version, "CARD-OK"))["status"] == "Blocked"


async def start(cp: Any, version: OcppVersion, tag: str, tx_id: str) -> tuple[str, Any]:
    """Start a transaction on connector 1 with `tag`: the status answered, and the transaction."""
    if version == V16:
        r = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag=tag, meter_start=100, timestamp=now())
        )
        return r.id_tag_info["status"], r.transaction_id
    r = await cp.call(
        call201.TransactionEvent(
            event_type="Started",
            timestamp=now(),
            trigger_reason="Authorized",
            seq_no=0,
            transaction_info={"transaction_id": tx_id},
            id_token={"id_token": tag, "type": "ISO14443"},
            evse={"id": 1, "connector_id": 1},
            meter_value=energy201(100),
        )
    )
    return r.id_token_info["status"], tx_id


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_refused_token_starts_nothing_and_a_walk_in_charges(
    central: Central, version: OcppVersion
) -> None:
    charger, _ = tokens(central.app, "WALK")
    async with library_charger(central, "WALK", version) as cp:
        assert await start(cp, version, "CARD-BLOCKED", "tx-1") == (
            "Blocked",
            0 if version == V16 else "tx-1",
        )
        assert (await start(cp, version, "BOB-CARD", "tx-2"))[0] == "Blocked"
        with central.app.store.reading() as tx:
            assert tx.sessions.all() == []
        central.app.tokens.set_walk_in(charger, 45)
        assert (await authorize(cp, version, "BOB-CARD"))["status"] == "Accepted"
        assert (await authorize(cp, version, "CARD-LAPSED"))["status"] == "Expired"
        status, _ = await start(cp, version, "BOB-CARD", "tx-3")
        assert status == "Accepted"
    with central.app.store.reading() as tx:
        (session,) = tx.sessions.all()
        booking = tx.bookings.get(session.booking_id)
    assert (session.id_tag, booking.price_per_kwh, booking.hold_amount) == ("BOB-CARD", 45, 0)


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_local_list_is_kept_by_the_virtual_charger(central: Central, version: OcppVersion) -> None:
    add_charger(central.app, "LIST", online=False)
    vc = VirtualCharger("LIST", central.ws, central.app.clock, [7_400], protocol=version, call_timeout_s=5)
    await vc.start()
    try:
        send = central.registry.send
        assert await send("LIST", cmd.GetLocalListVersion()) == cmd.Done(cmd.Status.ACCEPTED, 0)
        expiry = central.app.clock.now().replace(microsecond=0) + timedelta(days=30)  # as said on the wire
        full = cmd.SendLocalList(
            3,
            UpdateType.FULL,
            (
                ListEntry("CARD-OK", TokenStatus.ACCEPTED, expiry, "FLEET-1"),
                ListEntry("CARD-BLOCKED", TokenStatus.BLOCKED, type=TokenType.ISO15693),
            ),
        )
        assert await send("LIST", full) == cmd.Done(cmd.Status.ACCEPTED, None)
        assert await send("LIST", cmd.GetLocalListVersion()) == cmd.Done(cmd.Status.ACCEPTED, 3)
        entry = vc.local_auth.entries["CARD-OK"]
        assert (entry.status, entry.expires_at, entry.group_id) == ("Accepted", expiry, "FLEET-1")
        # A differential update changes what it names and removes an entry sent without a status.
        diff = cmd.SendLocalList(
            4,
            UpdateType.DIFFERENTIAL,
            (ListEntry("CARD-BLOCKED", None), ListEntry("CARD-NEW", TokenStatus.ACCEPTED)),
        )
        assert await send("LIST", diff) == cmd.Done(cmd.Status.ACCEPTED, None)
        assert sorted(vc.local_auth.entries) == ["CARD-NEW", "CARD-OK"]
        # One not newer than the list installed is refused, and changes nothing.
        stale = cmd.SendLocalList(4, UpdateType.DIFFERENTIAL, (ListEntry("CARD-OK", None),))
        assert await send("LIST", stale) == cmd.Rejected(cmd.Status.VERSION_MISMATCH)
        assert await send("LIST", cmd.GetLocalListVersion()) == cmd.Done(cmd.Status.ACCEPTED, 4)
        # A Full list with a removal in it cannot be said at all.
        bad = cmd.SendLocalList(5, UpdateType.FULL, (ListEntry("CARD-OK", None),))
        assert isinstance(await send("LIST", bad), cmd.NotApplicable)
        # ClearCache empties the cache, not the list.
        vc.local_auth.remember("SOMEONE", "Accepted")
        assert await send("LIST", cmd.ClearCache()) == cmd.Done(cmd.Status.ACCEPTED, None)
        assert vc.local_auth.cache == {}
        assert sorted(vc.local_auth.entries) == ["CARD-NEW", "CARD-OK"]
    finally:
        await vc.stop()


# As long as each version lets a charger present a token: 2.0.1's idToken is 36 characters, 2.1's 255.
LONGEST = {V201: "04" + "A1B2C3D4" * 4 + "EF", V21: "EMAID-" + "0123456789" * 24 + "ABCDEFGHI"}


@pytest.mark.postgres
@pytest.mark.parametrize("version", LONGEST)
async def test_on_postgresql_a_card_as_long_as_the_version_allows_is_added_and_charges(
    postgres_url: str, version: OcppVersion
) -> None:
    """Added with `chargeshare tokens add`, then presented by a charger of that version: Authorize,
    a booked start and its end, the session keeping the card's value: every column holding a token
    or tag is as wide as the longest a version allows, so PostgreSQL stores it whole."""
    tag = LONGEST[version]
    assert len(tag) == (36 if version == V201 else 255)
    app = build(Config(database_url=postgres_url, password_hash="fast"), clock=SystemClock())
    try:
        charger = add_charger(app, "LONG", online=False)
        ann = app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
        app.close()
        added = await asyncio.to_thread(
            CliRunner().invoke, cli, ["tokens", "add", str(ann), tag, "--database-url", postgres_url]
        )
        assert added.exit_code == 0, added.output
        app = build(Config(database_url=postgres_url, password_hash="fast"), clock=SystemClock())
        registry = ChargerRegistry(app, call_timeout_s=5)
        async with LoopbackServer(create_api(app, registry)) as server:
            ws = f"ws://127.0.0.1:{server.port}/ocpp"
            client, boot, calls = (
                (library_cp201, boot201, call201) if version == V201 else (library_cp21, boot21, call21)
            )
            async with client(ws, "LONG") as cp:
                assert (await boot(cp)).status == "Accepted"
                app.bookings.book(BookRequest(ann, charger, 1, 60, 10_000))
                token = {"id_token": tag, "type": "eMAID" if version == V21 else "ISO14443"}
                assert (await cp.call(calls.Authorize(id_token=token))).id_token_info["status"] == "Accepted"
                started = await cp.call(
                    tx_event("Started", 0, "tx-long", wh=100, id_tag=tag, evse=1, calls=calls)
                )
                assert started.id_token_info["status"] == "Accepted"
                await cp.call(
                    tx_event("Ended", 1, "tx-long", wh=2_100, trigger="StopAuthorized", calls=calls)
                )
        with app.store.reading() as tx:
            (session,) = tx.sessions.all()
        assert (session.id_tag, session.billed_wh) == (tag, 2_000)
    finally:
        app.close()
