"""The grid limit endpoints: a host's sites and chargers on them, the operator's feeders, sites and
flexibility events; what they answer, what they refuse, and the limits each change announces."""

from __future__ import annotations

from datetime import timedelta, timezone

from chargeshare.domain.grid_limits import MIN_CHARGING_W
from chargeshare.services.events import GridLimitsDue
from tests.api.world import client, world

_BST = timezone(timedelta(hours=1))


async def test_a_host_adds_a_site_puts_a_charger_on_it_and_the_charger_is_told() -> None:
    with world() as w:
        heard: list[GridLimitsDue] = []
        w.app.bus.subscribe(GridLimitsDue, heard.append)
        host = w.mine.host.headers
        async with client(w.app) as http:
            made = await http.post("/host/sites", json={"name": "home", "limit_w": 13_800}, headers=host)
            assert made.status_code == 201, made.text
            site = made.json()
            assert (site["house_load_w"], site["feeder_id"], site["charger_ids"]) == (0, None, [])
            placed = await http.put(
                f"/host/chargers/{w.mine.charger_id}/site", json={"site_id": site["site_id"]}, headers=host
            )
            assert placed.status_code == 204, placed.text
            assert heard and heard[-1].charge_point_id == w.mine.charge_point_id
            assert {w for _, w in heard[-1].limits_w} == {MIN_CHARGING_W}
            load = await http.put(
                f"/host/sites/{site['site_id']}/house-load", json={"house_load_w": 9_000}, headers=host
            )
            assert load.json()["house_load_w"] == 9_000
            (listed,) = (await http.get("/host/sites", headers=host)).json()
            assert listed["charger_ids"] == [w.mine.charger_id]
            # Another host's charger, or a site of theirs, is as if it did not exist.
            theirs = await http.put(
                f"/host/chargers/{w.theirs.charger_id}/site", json={"site_id": site["site_id"]}, headers=host
            )
            assert theirs.status_code == 404
            other = await http.get("/host/sites", headers=w.theirs.host.headers)
            assert other.json() == []
            foreign = await http.put(
                f"/host/sites/{site['site_id']}/house-load",
                json={"house_load_w": 1},
                headers=w.theirs.host.headers,
            )
            assert foreign.status_code == 404
            nothing = await http.post("/host/sites", json={"name": "x", "limit_w": 0}, headers=host)
            assert nothing.status_code in (400, 422) and "0 W" in nothing.text


async def test_a_house_load_reading_carries_when_it_was_measured_and_an_older_one_is_ignored() -> None:
    with world() as w:
        heard: list[GridLimitsDue] = []
        w.app.bus.subscribe(GridLimitsDue, heard.append)
        host = w.mine.host.headers
        async with client(w.app) as http:
            site = (
                await http.post("/host/sites", json={"name": "home", "limit_w": 13_800}, headers=host)
            ).json()
            path = f"/host/sites/{site['site_id']}/house-load"
            await http.put(
                f"/host/chargers/{w.mine.charger_id}/site", json={"site_id": site["site_id"]}, headers=host
            )
            now = w.clock.now()
            # Without a time, the server's now.
            plain = await http.put(path, json={"house_load_w": 1_000}, headers=host)
            assert plain.status_code == 200, plain.text
            assert plain.json()["applied"] and plain.json()["house_load_at"] == now.isoformat().replace(
                "+00:00", "Z"
            )
            w.clock.advance(60)
            kettle_on, kettle_off = (
                w.clock.now() - timedelta(seconds=30),
                w.clock.now() - timedelta(seconds=10),
            )
            # Measured in another zone: the same instant.
            newer = await http.put(
                path,
                json={"house_load_w": 1_000, "measured_at": kettle_off.astimezone(_BST).isoformat()},
                headers=host,
            )
            assert newer.json()["applied"]
            decided = len(heard)
            # The kettle's reading, older, arrives last: 200 with what is in force, and nothing decided.
            older = await http.put(
                path, json={"house_load_w": 4_000, "measured_at": kettle_on.isoformat()}, headers=host
            )
            assert older.status_code == 200, older.text
            body = older.json()
            assert (body["applied"], body["house_load_w"]) == (False, 1_000)
            assert body["house_load_at"] == kettle_off.isoformat().replace("+00:00", "Z")
            assert len(heard) == decided
            # A few seconds ahead is a clock's drift, taken; far ahead is refused and changes nothing.
            ahead = await http.put(
                path,
                json={
                    "house_load_w": 2_000,
                    "measured_at": (w.clock.now() + timedelta(seconds=3)).isoformat(),
                },
                headers=host,
            )
            assert ahead.json()["applied"]
            wrong = await http.put(
                path,
                json={"house_load_w": 7_000, "measured_at": (w.clock.now() + timedelta(hours=1)).isoformat()},
                headers=host,
            )
            assert wrong.status_code == 400 and "ahead" in wrong.text
            naive = await http.put(
                path, json={"house_load_w": 7_000, "measured_at": "2026-01-01T12:00:00"}, headers=host
            )
            assert naive.status_code == 422
            (listed,) = (await http.get("/host/sites", headers=host)).json()
            assert listed["house_load_w"] == 2_000


async def test_the_operator_adds_feeders_sites_and_flexibility_events() -> None:
    with world() as w:
        admin = w.admin.headers
        async with client(w.app) as http:
            feeder = (
                await http.post("/admin/feeders", json={"name": "F1", "limit_w": 60_000}, headers=admin)
            ).json()
            assert feeder == {"feeder_id": feeder["feeder_id"], "name": "F1", "limit_w": 60_000}
            site = await http.post(
                "/admin/sites",
                json={
                    "host_id": w.mine.host.hid,
                    "name": "home",
                    "limit_w": 13_800,
                    "house_load_w": 2_000,
                    "feeder_id": feeder["feeder_id"],
                },
                headers=admin,
            )
            assert site.status_code == 201 and site.json()["feeder_id"] == feeder["feeder_id"]
            starts = w.clock.now() + timedelta(hours=1)
            body = {
                "scope": "feeder",
                "target_id": feeder["feeder_id"],
                "limit_w": 20_000,
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
            }
            event = await http.post("/admin/flex-events", json=body, headers=admin)
            assert event.status_code == 201, event.text
            listed = (await http.get("/admin/flex-events?current=true", headers=admin)).json()
            assert [e["event_id"] for e in listed] == [event.json()["event_id"]]
            assert len((await http.get("/admin/sites", headers=admin)).json()) == 1
            assert len((await http.get("/admin/feeders", headers=admin)).json()) == 1
            unknown = await http.post("/admin/flex-events", json={**body, "target_id": 999}, headers=admin)
            assert unknown.status_code == 404
            backwards = await http.post(
                "/admin/flex-events", json={**body, "ends_at": body["starts_at"]}, headers=admin
            )
            assert backwards.status_code in (400, 422)
            hosts_cannot = await http.get("/admin/feeders", headers=w.mine.host.headers)
            assert hosts_cannot.status_code == 403
