"""Bad input to the REST API gets a 4xx with a reason and changes nothing: times out of any sensible
range, and numbers JSON does not have (Python's json reads NaN, Infinity and 1e400 as floats)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, cast

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from chargeshare.bootstrap import App
from tests.api.world import World, client, world


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite://"
    url: str = request.getfixturevalue("postgres_url")
    return url


def bookings_of(app: App, driver_id: int) -> int:
    with app.store.reading() as tx:
        return len(tx.bookings.of(driver_id=driver_id))


def reason(answer: httpx.Response) -> str:
    """The sentence a 4xx gives: `detail` in our shape, or the messages of a validation error."""
    detail: Any = answer.json()["detail"]
    if isinstance(detail, str):
        return detail
    return " ".join(f"{d['msg']} {d.get('ctx', {}).get('error', '')}" for d in detail)


EXTREME_TIMES = [
    "9999-12-31T23:59:00Z",  # adding the booking's length overflows
    "9999-12-31T23:00:00-05:00",  # past year 9999 once in UTC
    "0001-01-01T00:00:00+14:00",  # before year 1 once in UTC
    "0001-01-01T00:00:00Z",
    "1899-12-31T23:59:59Z",
    "9000-01-01T00:00:00Z",
]


@pytest.mark.parametrize("starts_at", EXTREME_TIMES)
@pytest.mark.slow
async def test_a_booking_at_a_time_out_of_range_is_refused_and_books_nothing(
    database_url: str, starts_at: str
) -> None:
    with world(database_url) as w:
        driver = w.mine.driver
        before = bookings_of(w.app, driver.did)
        body = {
            "charger_id": w.mine.charger_id,
            "minutes": 60,
            "max_energy_wh": 1_000,
            "starts_at": starts_at,
        }
        async with client(w.app) as http:
            answer = await http.post("/bookings", json=body, headers=driver.headers)
        assert answer.status_code == 422, answer.text
        assert "between 1900-01-01 and 8999-12-31" in reason(answer)
        assert bookings_of(w.app, driver.did) == before


@pytest.mark.parametrize("at", EXTREME_TIMES)
@pytest.mark.slow
async def test_a_search_window_out_of_range_is_refused(database_url: str, at: str) -> None:
    with world(database_url) as w:
        query = {"bbox": "-3,51,-2,52", "available_from": at, "available_until": "2026-03-03T00:00:00Z"}
        async with client(w.app) as http:
            answer = await http.get("/chargers", params=query)
            assert answer.status_code == 422, answer.text
            assert "between 1900-01-01 and 8999-12-31" in reason(answer)
            query = {**query, "available_from": "2026-03-02T10:00:00Z", "available_until": at}
            assert (await http.get("/chargers", params=query)).status_code == 422


# ---- numbers JSON does not have ------------------------------------------------------------------
NOT_JSON_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1E999"]


async def post_raw(http: httpx.AsyncClient, path: str, body: str, headers: dict[str, str]) -> httpx.Response:
    return await http.post(path, content=body, headers={**headers, "Content-Type": "application/json"})


@pytest.mark.parametrize("token", NOT_JSON_NUMBERS)
@pytest.mark.slow
async def test_numbers_json_does_not_have_are_refused_with_a_reason_and_change_nothing(token: str) -> None:
    with world() as w:
        host, driver = w.mine.host.headers, w.mine.driver
        async with client(w.app) as http:
            listing = (
                f'{{"charge_point_id": "NEW-1", "lat": {token}, "lon": -2.6, "price_per_kwh": 30,'
                ' "connectors": [{"connector_no": 1, "max_power_w": 7400}]}'
            )
            answer = await post_raw(http, "/host/chargers", listing, host)
            assert answer.status_code == 422, answer.text
            assert token.lstrip("-") in reason(answer) or "too large" in reason(answer)
            assert (await http.get("/host/chargers", headers=host)).json()[-1]["charge_point_id"] != "NEW-1"
            # In a field the model ignores, it was booked as if it were not there.
            before = bookings_of(w.app, driver.did)
            booking = (
                f'{{"charger_id": {w.mine.charger_id}, "minutes": 60, "max_energy_wh": 1000,'
                f' "starts_at": "2026-03-03T10:00:00Z", "note": [{token}]}}'
            )
            answer = await post_raw(http, "/bookings", booking, driver.headers)
            assert answer.status_code == 422, answer.text
            assert bookings_of(w.app, driver.did) == before


async def test_the_reason_points_at_the_number_not_at_a_string_that_looks_like_it() -> None:
    with world() as w:
        async with client(w.app) as http:
            body = '{"email": "NaN@example.com", "password": "Infinity-and-beyond", "name": NaN}'
            answer = await post_raw(http, "/auth/register/host", body, {})
        assert answer.status_code == 422
        [error] = answer.json()["detail"]
        assert error["loc"] == ["body", body.rindex("NaN")] and "NaN" in error["ctx"]["error"]


def json_body_operations(w: World) -> list[tuple[str, str, dict[str, str]]]:
    """Every operation that takes a JSON body: (method, path with ids filled in, the role's headers)."""
    from chargeshare.entrypoints.api import create_api

    found = []
    for path, operations in create_api(w.app).openapi()["paths"].items():
        for method, operation in operations.items():
            if "application/json" not in operation.get("requestBody", {}).get("content", {}):
                continue
            role = w.admin if path.startswith("/admin") else w.mine.host if path.startswith("/host") else None
            headers = role.headers if role is not None else w.mine.driver.headers
            found.append((method.upper(), re.sub(r"\{[^}]+\}", "1", path), headers))
    return found


@pytest.mark.slow
async def test_every_json_body_is_read_strictly() -> None:
    with world() as w:
        operations = json_body_operations(w)
        assert len(operations) >= 8  # sign-ups, login, bookings, chargers, connectors, calendar, kyc
        async with client(w.app) as http:
            for method, path, headers in operations:
                answer = await http.request(
                    method,
                    path,
                    content='{"anything": NaN}',
                    headers={**headers, "Content-Type": "application/json"},
                )
                assert answer.status_code == 422, (method, path, answer.text)
                assert "NaN" in reason(answer), (method, path, answer.text)


async def test_non_finite_numbers_written_as_strings_are_refused_as_such() -> None:
    with world() as w:
        host = w.mine.host.headers
        async with client(w.app) as http:
            listing = {
                "charge_point_id": "NEW-2",
                "lat": "NaN",
                "lon": -2.6,
                "price_per_kwh": 30,
                "connectors": [{"connector_no": 1, "max_power_w": 7400}],
            }
            answer = await http.post("/host/chargers", json=listing, headers=host)
            assert answer.status_code == 422 and "finite" in reason(answer), answer.text
            for query in (
                "lat=nan&lon=0&radius_m=100",
                "lat=0&lon=inf&radius_m=100",
                "lat=0&lon=0&radius_m=nan",
            ):
                answer = await http.get(f"/chargers?{query}")
                assert answer.status_code == 422 and "finite" in reason(answer), (query, answer.text)


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9".encode("latin-1")])
async def test_an_idempotency_key_that_is_not_a_short_printable_token_is_refused(key: str | bytes) -> None:
    with world("sqlite://") as w:
        driver = w.mine.driver
        before = bookings_of(w.app, driver.did)
        body = {"charger_id": w.mine.charger_id, "minutes": 60, "max_energy_wh": 1_000}
        # A header that is not text reaches httpx as bytes; the mapping mixes both on purpose.
        headers = cast(dict[str, str], {**driver.headers, "Idempotency-Key": key})
        async with client(w.app) as http:
            answer = await http.post("/bookings", json=body, headers=headers)
        assert answer.status_code == 422, answer.text
        assert "idempotency-key" in answer.text.lower()
        assert bookings_of(w.app, driver.did) == before


async def test_a_booking_sent_again_under_its_key_answers_with_the_same_booking() -> None:
    with world("sqlite://") as w:
        driver = w.mine.driver
        tomorrow = (w.app.clock.now() + timedelta(days=1)).isoformat()
        body = {"charger_id": w.mine.charger_id, "minutes": 60, "max_energy_wh": 1_000, "starts_at": tomorrow}
        headers = {**driver.headers, "Idempotency-Key": "9b2f7c1e-attempt"}
        async with client(w.app) as http:
            first = await http.post("/bookings", json=body, headers=headers)
            again = await http.post("/bookings", json=body, headers=headers)
            other = await http.post("/bookings", json={**body, "minutes": 30}, headers=headers)
        assert (first.status_code, again.status_code) == (201, 201), again.text
        assert again.json() == first.json()
        assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused", other.text


async def test_a_booking_made_is_answered_as_made_when_reading_it_back_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with world("sqlite://") as w:
        tomorrow = (w.app.clock.now() + timedelta(days=1)).isoformat()
        body = {"charger_id": w.mine.charger_id, "minutes": 60, "max_energy_wh": 1_000, "starts_at": tomorrow}
        headers = {**w.mine.driver.headers, "Idempotency-Key": "read-back-lost"}
        with w.app.store.reading() as tx:
            before = len(tx.bookings.all())
        made, reading = w.app.bookings.settlement.finish_placement, w.app.store.reading
        failing: list[bool] = []

        def finish_then_fail(*args: Any) -> Any:
            record = made(*args)
            failing.append(True)  # committed: every read from here on fails
            return record

        def flaky_reading() -> Any:
            if failing:
                raise OperationalError("SELECT ...", {}, Exception("server closed the connection"))
            return reading()

        monkeypatch.setattr(w.app.bookings.settlement, "finish_placement", finish_then_fail)
        monkeypatch.setattr(w.app.store, "reading", flaky_reading)
        async with client(w.app) as http:
            first = await http.post("/bookings", json=body, headers=headers)
            failing.clear()
            again = await http.post("/bookings", json=body, headers=headers)
        assert (first.status_code, again.status_code) == (201, 201), first.text
        assert first.json()["id"] == again.json()["id"]
        assert first.json()["status"] == "confirmed"
        with w.app.store.reading() as tx:
            assert len(tx.bookings.all()) == before + 1
