"""A command decided by a process that dies before it reaches the charger's link is not lost while
the charger stays connected elsewhere: two `serve` processes on PostgreSQL and Redis; the charger
holds a reservation through A; the driver cancels through B, which dies (a failpoint) once the
cancellation is committed and before its CancelReservation left. A, holding the link, finds the
cancellation still owed and sends it; the charger stops holding the connector for nobody."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from chargeshare.failpoints import EXIT_CODE
from tests.e2e.ocpp_clients import Script, boot16, library_cp16
from tests.e2e.test_scale_out import World, available, processes, until, wait_healthy
from tests.e2e.test_scale_out import world as world  # the fixture, re-exported
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

# Owed for a second before A asks again: the test waits on the outcome, never on this figure.
RESEND = {"CHARGESHARE_COMMAND_RESEND_AFTER_S": "1"}


async def test_a_cancellation_whose_process_died_before_telling_the_charger_still_reaches_it(
    postgres_url: str,
    world: World,
    tmp_path: Path,
) -> None:
    env_of = {"A": RESEND, "B": {**RESEND, "CHARGESHARE_FAILPOINT": "cancel-committed"}}
    with processes(postgres_url, tmp_path, "AB", env_of) as (a, b):
        await wait_healthy([a, b])
        script = Script()
        async with (
            library_cp16(a.ws, "CP1", script) as cp,
            httpx.AsyncClient(base_url=a.http, timeout=10) as on_a,
            httpx.AsyncClient(base_url=b.http, timeout=10) as on_b,
        ):
            await boot16(cp)
            await available(cp)
            starts = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
            body = {
                "charger_id": world.charger_id,
                "minutes": 60,
                "max_energy_wh": 10_000,
                "starts_at": starts,
            }
            r = await on_a.post("/bookings", json=body, headers=world.driver.headers)
            assert r.status_code == 201, r.text
            booking_id = r.json()["id"]

            async def reservation() -> str:
                got = await on_a.get(f"/bookings/{booking_id}", headers=world.driver.headers)
                return str(got.json()["reservation"])

            await until(reservation, "accepted", "the charger holding the reservation")
            with pytest.raises(httpx.TransportError):  # B dies with the cancellation committed
                await on_b.post(f"/bookings/{booking_id}/cancel", headers=world.driver.headers)
            assert b.process.wait(timeout=30) == EXIT_CODE, b.output()
            got = await on_a.get(f"/bookings/{booking_id}", headers=world.driver.headers)
            assert got.json()["status"] == "cancelled"
            await eventually(
                lambda: bool(script.asked("CancelReservation")), "CancelReservation sent by A", tries=1_000
            )
            assert script.asked("CancelReservation") == [{"reservation_id": booking_id}]
            await until(reservation, "none", "the charger's answer written")
