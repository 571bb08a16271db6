"""The smart charging endpoints (the host's choices, the operator's DSR flag, a driver's override
when booking): what they answer, what they refuse, and the change each announces for the charger."""

from __future__ import annotations

from datetime import timedelta

from chargeshare.domain.smart_charge_points import SmartSettings
from chargeshare.services.events import SmartSettingsChanged
from tests.api.world import client, world

DEFAULTS = {
    "randomised_delay_max_s": 600,
    "randomised_delay_override": False,
    "default_charging_hours": True,
    "demand_side_response": False,
}


async def test_a_host_sees_the_defaults_then_changes_them_and_the_charger_is_told() -> None:
    with world() as w:
        heard: list[SmartSettingsChanged] = []
        w.app.bus.subscribe(SmartSettingsChanged, heard.append)
        host = w.mine.host.headers
        url = f"/host/chargers/{w.mine.charger_id}/smart-charging"
        async with client(w.app) as http:
            first = await http.get(url, headers=host)
            assert first.json() == {"charger_id": w.mine.charger_id, **DEFAULTS, "configured": False}
            chosen = {
                "randomised_delay_max_s": 1_800,
                "randomised_delay_override": False,
                "default_charging_hours": False,
            }
            changed = await http.put(url, json=chosen, headers=host)
            assert changed.status_code == 200, changed.text
            assert changed.json() == {
                "charger_id": w.mine.charger_id,
                **chosen,
                "demand_side_response": False,
                "configured": True,
            }
            assert [(e.charge_point_id, e.settings) for e in heard] == [
                (
                    w.mine.charge_point_id,
                    SmartSettings(randomised_delay_max_s=1_800, default_charging_hours=False),
                )
            ]
            too_long = await http.put(url, json={**chosen, "randomised_delay_max_s": 1_801}, headers=host)
            assert too_long.status_code == 422 and "1800" in too_long.text
            missing = await http.put(url, json={"randomised_delay_max_s": 60}, headers=host)
            assert missing.status_code == 422
            theirs = f"/host/chargers/{w.theirs.charger_id}/smart-charging"
            assert (await http.get(theirs, headers=host)).status_code == 404
            assert (await http.put(theirs, json=chosen, headers=host)).status_code == 404
            assert len(heard) == 1  # nothing refused was announced


async def test_the_operators_dsr_flag_keeps_the_hosts_choices() -> None:
    with world() as w:
        admin, host = w.admin.headers, w.mine.host.headers
        mine = w.mine.charger_id
        async with client(w.app) as http:
            chosen = {
                "randomised_delay_max_s": 300,
                "randomised_delay_override": True,
                "default_charging_hours": True,
            }
            await http.put(f"/host/chargers/{mine}/smart-charging", json=chosen, headers=host)
            on = await http.put(
                f"/admin/chargers/{mine}/demand-side-response", json={"active": True}, headers=admin
            )
            assert on.json() == {
                "charger_id": mine,
                **chosen,
                "demand_side_response": True,
                "configured": True,
            }
            # The host's next change leaves the operator's flag as it is.
            again = await http.put(f"/host/chargers/{mine}/smart-charging", json=chosen, headers=host)
            assert again.json()["demand_side_response"] is True
            seen = await http.get(f"/admin/chargers/{mine}/smart-charging", headers=admin)
            assert seen.json() == on.json()
            nobody = await http.put(
                "/admin/chargers/9999/demand-side-response", json={"active": True}, headers=admin
            )
            assert nobody.status_code == 404
            bad = await http.put(
                f"/admin/chargers/{mine}/demand-side-response", json={"active": "maybe"}, headers=admin
            )
            assert bad.status_code == 422


async def test_a_driver_books_with_the_override_and_the_booking_says_so() -> None:
    with world() as w:
        driver = w.mine.driver.headers
        starts = (w.clock.now() + timedelta(days=3)).isoformat()
        body = {"charger_id": w.mine.charger_id, "minutes": 60, "max_energy_wh": 5_000, "starts_at": starts}
        async with client(w.app) as http:
            plain = await http.post("/bookings", json=body, headers=driver)
            later = (w.clock.now() + timedelta(days=4)).isoformat()
            overridden = await http.post(
                "/bookings",
                json={**body, "starts_at": later, "override_smart_charging": True},
                headers=driver,
            )
            assert plain.status_code == overridden.status_code == 201, overridden.text
            assert plain.json()["override_smart_charging"] is False
            assert overridden.json()["override_smart_charging"] is True
            got = await http.get(f"/bookings/{overridden.json()['id']}", headers=driver)
            assert got.json()["override_smart_charging"] is True
