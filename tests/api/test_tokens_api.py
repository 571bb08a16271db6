"""The id token and walk-in endpoints: what they answer, and what they refuse with a reason."""

from __future__ import annotations

from datetime import timedelta

from chargeshare.services.charging import AuthStatus
from tests.api.world import client, world


async def test_tokens_added_blocked_and_listed_and_a_hosts_walk_in() -> None:
    with world() as w:
        admin, host = w.admin.headers, w.mine.host.headers
        driver = w.mine.driver.did
        async with client(w.app) as http:
            expires = (w.clock.now() + timedelta(minutes=30)).isoformat()
            body = {"driver_id": driver, "value": "CARD-1", "type": "ISO15693", "expires_at": expires}
            made = await http.post("/admin/tokens", json={**body, "group_id": "FLEET"}, headers=admin)
            assert made.status_code == 201, made.text
            assert {k: made.json()[k] for k in ("value", "type", "status", "status_now", "group_id")} == {
                "value": "CARD-1",
                "type": "ISO15693",
                "status": "Accepted",
                "status_now": "Accepted",
                "group_id": "FLEET",
            }
            again = await http.post("/admin/tokens", json=body, headers=admin)
            assert again.status_code == 400 and "already exists" in again.json()["detail"]
            too_long = await http.post("/admin/tokens", json={**body, "value": "X" * 256}, headers=admin)
            assert too_long.status_code == 422 and "255" in too_long.text
            group = await http.post(
                "/admin/tokens", json={**body, "value": "C2", "group_id": "G" * 21}, headers=admin
            )
            assert group.status_code == 422
            nobody = await http.post("/admin/tokens", json={**body, "driver_id": 9_999}, headers=admin)
            assert nobody.status_code == 404
            w.clock.advance(30 * 60)
            (listed,) = (await http.get(f"/admin/tokens?driver_id={driver}", headers=admin)).json()
            assert (listed["status"], listed["status_now"]) == ("Accepted", "Expired")
            blocked = await http.post("/admin/tokens/block", json={"value": "TAGA"}, headers=admin)
            assert (blocked.status_code, blocked.json()["status"]) == (200, "Blocked")
            assert w.app.charging.authorize(w.mine.charge_point_id, "TAGA") is AuthStatus.BLOCKED
            unknown = await http.post("/admin/tokens/block", json={"value": "NOBODY"}, headers=admin)
            assert unknown.status_code == 404
            long = {**body, "value": "X" * 36, "group_id": None}  # a 2.0.1 charger's card
            assert (await http.post("/admin/tokens", json=long, headers=admin)).status_code == 201

            url = f"/host/chargers/{w.mine.charger_id}/walk-in"
            on = await http.put(url, json={"price_per_kwh": 45}, headers=host)
            assert on.json() == {"price_per_kwh": 45}
            assert w.app.tokens.walk_in_price(w.mine.charger_id) == 45
            free = await http.put(url, json={"price_per_kwh": 0}, headers=host)
            assert free.status_code == 422
            theirs = f"/host/chargers/{w.theirs.charger_id}/walk-in"
            assert (await http.put(theirs, json={"price_per_kwh": 45}, headers=host)).status_code == 404
            assert w.app.tokens.walk_in_price(w.theirs.charger_id) is None
            off = await http.put(url, json={"price_per_kwh": None}, headers=host)
            assert off.json() == {"price_per_kwh": None}
