"""A driver's override of a running session through the API, and what operators and the booking's
parties see of commands owed to chargers: each with its charger's refusals and when it is asked
again (`GET /admin/commands-owed`, the export's `charger_refusals`)."""

from __future__ import annotations

from datetime import timedelta

from chargeshare.domain.command_backoff import Backoff
from chargeshare.ocpp import V16
from chargeshare.services.booking import BookRequest
from tests.api.world import client, world


async def test_a_driver_overrides_a_running_session_and_operators_see_it_owed_until_taken() -> None:
    with world() as w:
        a, cp_id = w.mine, f"{w.mine.charge_point_id}S"  # its spare charger: free now
        w.app.charging.boot(cp_id, V16)
        booking = w.app.bookings.book(BookRequest(a.driver.did, a.spare_charger_id, 1, 60, 5_000)).booking_id
        session = w.app.charging.start(cp_id, 1, "TAGA", 5_000, w.clock.now()).transaction_id
        async with client(w.app) as http:
            owed = await http.get("/admin/commands-owed", headers=w.admin.headers)
            assert owed.status_code == 200 and owed.json() == []
            told = await http.post(f"/bookings/{booking}/override", headers=a.driver.headers)
            assert told.status_code == 200, told.text
            assert told.json() == {"booking_id": booking, "charger_told_now": True}
            owed = await http.get("/admin/commands-owed", headers=w.admin.headers)
            assert owed.json() == [
                {
                    "charge_point_id": cp_id,
                    "kind": "override",
                    "session_id": session,
                    "state": "owed",
                    "refusals": 0,
                    "retry_at": None,
                }
            ]
            w.app.smart.override_refused(session)
            (row,) = (await http.get("/admin/commands-owed", headers=w.admin.headers)).json()
            retry = w.clock.now() + timedelta(seconds=Backoff().first_s)
            assert (row["state"], row["refusals"]) == ("waiting", 1)
            assert row["retry_at"].startswith(retry.isoformat()[:19])
            w.app.smart.override_taken(session)
            assert (await http.get("/admin/commands-owed", headers=w.admin.headers)).json() == []
            theirs = await http.post(f"/bookings/{w.theirs.live_booking}/override", headers=a.driver.headers)
            assert theirs.status_code == 404
            ended = await http.post(f"/bookings/{a.done_booking}/override", headers=a.driver.headers)
            assert ended.status_code == 409, ended.text


async def test_the_export_view_shows_its_chargers_refusals_until_it_accepts() -> None:
    with world() as w:
        a, cp_id = w.mine, f"{w.mine.charge_point_id}S"  # its spare charger: free now
        w.app.charging.boot(cp_id, V16)
        booking = w.app.bookings.book(BookRequest(a.driver.did, a.spare_charger_id, 1, 60, 5_000)).booking_id
        session = w.app.charging.start(cp_id, 1, "TAGA", 5_000, w.clock.now()).transaction_id
        async with client(w.app) as http:
            url = f"/bookings/{booking}/export"
            terms = {"price_per_kwh": 25, "soc_floor_pct": 40}
            assert (
                await http.put(f"/bookings/{booking}/export-terms", json=terms, headers=a.driver.headers)
            ).status_code == 200
            assert (await http.get(url, headers=a.driver.headers)).json()["charger_refusals"] is None
            for _ in range(Backoff().limit):
                w.app.v2g.export_refused(session)
            refusals = (await http.get(url, headers=a.host.headers)).json()["charger_refusals"]
            assert refusals["count"] == Backoff().limit and refusals["given_up"] is True
            assert refusals["retry_at"] is None and refusals["last_at"].startswith("2026-")
            w.app.v2g.export_taken(session)
            assert (await http.get(url, headers=a.driver.headers)).json()["charger_refusals"] is None
