"""Bad input to the REST API gets a 4xx with a reason and changes nothing: times out of any sensible
range."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chargeshare.bootstrap import App
from tests.api.world import client, world


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite://"
    url: str = request.getfixturevalue("postgres_url")
    return url


def bookings_of(app: App, driver_id: int) -> int:
    with app.store.reading() as tx:
        return len(tx.bookings_of(driver_id=driver_id))


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
async def test_a_search_window_out_of_range_is_refused(database_url: str, at: str) -> None:
    with world(database_url) as w:
        query = {"bbox": "-3,51,-2,52", "available_from": at, "available_until": "2026-03-03T00:00:00Z"}
        async with client(w.app) as http:
            answer = await http.get("/chargers", params=query)
            assert answer.status_code == 422, answer.text
            assert "between 1900-01-01 and 8999-12-31" in reason(answer)
            query = {**query, "available_from": "2026-03-02T10:00:00Z", "available_until": at}
            assert (await http.get("/chargers", params=query)).status_code == 422
