"""Every endpoint x every role (anonymous, driver, host, admin) x own and another tenant's resource.

Refusals are exact (401 without a token, 403 for the wrong role, 404 for another tenant's resource, as
if it did not exist) and a refused write changes nothing in the database. Every operation in the
OpenAPI document must have a row here, so a new endpoint cannot skip the matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from chargeshare.adapters.sql import schema as sql_schema
from chargeshare.bootstrap import App
from chargeshare.domain.fleet import BlockRule
from chargeshare.domain.fleet_ledger import charge_on_account
from chargeshare.domain.ledger import export_credit_entry
from chargeshare.domain.money import split_fee
from chargeshare.entrypoints.api import create_api
from chargeshare.services.fleet import ConnectorRef
from tests.api.world import Side, World, client, world
from tests.api_helpers import PASSWORD
from tests.conftest import sql_store

ROLES = ("anonymous", "driver", "host", "admin")

# Who may call: public (anyone), signed_in (any role), driver, host, party (driver or host), admin.
Request = tuple[str, dict[str, Any] | list[Any] | None]


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # as in the OpenAPI document
    who: str
    ok: int  # the status when allowed
    request: Callable[[World, Side, str], Request]  # (world, the side aimed at, caller role) -> url, body
    per_tenant: bool = True  # False: no tenant's resource in the path (collections, sign-up)


def fixed(url: str, body: dict[str, Any] | None = None) -> Callable[[World, Side, str], Request]:
    return lambda _w, _s, _r: (url, body)


def _site(w: World, s: Side) -> int:
    """A site of the side's host."""
    return w.app.grid.add_site(s.host.hid, "home", 13_800).site_id


def _flex_event(w: World) -> dict[str, Any]:
    """A flexibility event on a new feeder, starting in an hour."""
    feeder = w.app.grid.add_feeder("F", 60_000)
    starts = w.clock.now() + timedelta(hours=1)
    return {
        "scope": "feeder",
        "target_id": feeder.feeder_id,
        "limit_w": 10_000,
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=1)).isoformat(),
    }


def _image(w: World) -> str:
    """A published firmware image's token."""
    return w.app.files.publish_firmware("fw.bin", b"image").token


def _slot(w: World, s: Side) -> str:
    """A fresh upload location on the side's charger."""
    return f"/files/{w.app.files.log_slot(s.charge_point_id).token}"


def _fleet(w: World) -> int:
    """The world's fleet (a business account), made when first asked for."""
    found = w.app.fleet.accounts()
    if found:
        return found[0].fleet_id
    return w.app.auth.register_fleet("fleet@fleets.example", PASSWORD, "Vans Ltd", "FLEETTAG")[1]


def _invoiced(w: World) -> str:
    """A month the fleet has an invoice with something to pay: a block occurrence tonight, with a
    charge on account dated in February (the world's clock is in March, so the month is over)."""
    fleet_id = _fleet(w)
    if w.app.fleet.invoices(fleet_id):
        return "2026-02"
    day = w.clock.now().date()
    rule = BlockRule(frozenset({day.weekday()}), time(20), time(6), day, day)
    booked = w.app.fleet.book_block(fleet_id, rule, [ConnectorRef(w.mine.charger_id, 1)])
    booking = booked.bookings[0]
    entries = charge_on_account(
        entry_id="feb",
        split_id="feb-split",
        booking_id=booking.booking_id,
        fleet_id=fleet_id,
        host_id=booking.host_id,
        amount=1_000,
        split=split_fee(1_000, 0),
        at=w.clock.now() - timedelta(days=10),
    )
    with w.app.store.transaction() as tx:
        tx.ledger.add(list(entries))
    w.app.fleet.invoice(fleet_id, "2026-02")
    return "2026-02"


def _export_owed(w: World) -> str:
    """A month the grid buyer owes for: an export credit of 120p on the side's settled booking, dated
    in February (the world's clock is in March, so the month is over)."""
    if not w.app.grid_settlement.statement("2026-02").lines:
        booking = w.mine.done_booking
        credit = export_credit_entry(
            "export-feb", booking, w.mine.driver.did, 120, w.clock.now() - timedelta(days=10)
        )
        with w.app.store.transaction() as tx:
            tx.ledger.add([credit])
    return "2026-02"


BLOCK = {
    "weekdays": [0, 1, 2, 3, 4],
    "start": "20:00",
    "end": "06:00",
    "first_day": "2026-03-09",
    "last_day": "2026-03-13",
}

ROWS = [
    Row("GET", "/health", "public", 200, fixed("/health"), per_tenant=False),
    Row("GET", "/healthz", "public", 200, fixed("/healthz"), per_tenant=False),
    Row("GET", "/readyz", "public", 200, fixed("/readyz"), per_tenant=False),
    Row("GET", "/metrics", "public", 200, fixed("/metrics"), per_tenant=False),
    Row("GET", "/chargers", "public", 200, fixed("/chargers?bbox=-3,51,-2,52"), per_tenant=False),
    Row(
        "GET", "/chargers/{charger_id}", "public", 200, lambda _w, s, _r: (f"/chargers/{s.charger_id}", None)
    ),
    Row(
        "POST",
        "/auth/register/driver",
        "public",
        201,
        lambda _w, _s, r: (
            "/auth/register/driver",
            {"email": f"new-{r}@x.example", "password": PASSWORD, "name": r},
        ),
        per_tenant=False,
    ),
    Row(
        "POST",
        "/auth/register/host",
        "public",
        201,
        lambda _w, _s, r: (
            "/auth/register/host",
            {"email": f"new-{r}@y.example", "password": PASSWORD, "name": r},
        ),
        per_tenant=False,
    ),
    Row(
        "POST",
        "/auth/login",
        "public",
        200,
        lambda _w, s, _r: ("/auth/login", {"email": s.driver.email, "password": PASSWORD}),
        per_tenant=False,
    ),
    Row("GET", "/auth/me", "signed_in", 200, fixed("/auth/me"), per_tenant=False),
    Row("GET", "/host/chargers", "host", 200, fixed("/host/chargers"), per_tenant=False),
    Row(
        "POST",
        "/host/chargers",
        "host",
        201,
        fixed(
            "/host/chargers",
            {
                "charge_point_id": "NEW1",
                "lat": 51.4,
                "lon": -2.6,
                "price_per_kwh": 30,
                "connectors": [{"connector_no": 1, "max_power_w": 7400}],
            },
        ),
        per_tenant=False,
    ),
    Row(
        "GET",
        "/host/chargers/{charger_id}",
        "host",
        200,
        lambda _w, s, _r: (f"/host/chargers/{s.charger_id}", None),
    ),
    Row(
        "PATCH",
        "/host/chargers/{charger_id}",
        "host",
        200,
        lambda _w, s, _r: (f"/host/chargers/{s.charger_id}", {"title": "renamed", "price_per_kwh": 55}),
    ),
    Row(
        "PUT",
        "/host/chargers/{charger_id}/boot-policy",
        "host",
        200,
        lambda _w, s, _r: (f"/host/chargers/{s.charger_id}/boot-policy", {"boot_policy": "Accepted"}),
    ),
    Row(
        "DELETE",
        "/host/chargers/{charger_id}",
        "host",
        204,
        lambda _w, s, _r: (f"/host/chargers/{s.spare_charger_id}", None),
    ),
    Row(
        "PUT",
        "/host/chargers/{charger_id}/availability",
        "host",
        200,
        lambda _w, s, _r: (
            f"/host/chargers/{s.charger_id}/availability",
            [{"weekday": 0, "start_minute": 0, "end_minute": 1440}],
        ),
    ),
    Row(
        "POST",
        "/host/chargers/{charger_id}/connectors",
        "host",
        201,
        lambda _w, s, _r: (
            f"/host/chargers/{s.charger_id}/connectors",
            {"connector_no": 5, "max_power_w": 7400},
        ),
    ),
    Row(
        "PATCH",
        "/host/chargers/{charger_id}/connectors/{connector_no}",
        "host",
        200,
        lambda _w, s, _r: (f"/host/chargers/{s.charger_id}/connectors/1", {"max_power_w": 11_000}),
    ),
    Row(
        "DELETE",
        "/host/chargers/{charger_id}/connectors/{connector_no}",
        "host",
        200,
        lambda _w, s, _r: (f"/host/chargers/{s.spare_charger_id}/connectors/2", None),
    ),
    Row("GET", "/host/earnings", "host", 200, fixed("/host/earnings"), per_tenant=False),
    Row("GET", "/host/payouts", "host", 200, fixed("/host/payouts"), per_tenant=False),
    Row("GET", "/host/statements/{year}", "host", 200, fixed("/host/statements/2026"), per_tenant=False),
    Row("GET", "/host/seller-details", "host", 200, fixed("/host/seller-details"), per_tenant=False),
    Row(
        "PUT",
        "/host/seller-details",
        "host",
        200,
        fixed(
            "/host/seller-details",
            {
                "kind": "individual",
                "first_names": "Hannah",
                "last_name": "Hughes",
                "birth_date": "1980-02-03",
                "address_line1": "1 Harbourside",
                "city": "Bristol",
                "postcode": "BS1 5TR",
                "country": "GB",
                "tax_id_kind": "nino",
                "tax_id": "AB123456C",
            },
        ),
        per_tenant=False,
    ),
    Row(
        "POST",
        "/bookings",
        "driver",
        201,
        lambda w, s, _r: (
            "/bookings",
            {
                "charger_id": s.charger_id,
                "connector_no": 1,
                "minutes": 60,
                "max_energy_wh": 5_000,
                "starts_at": (w.clock.now().replace(hour=20)).isoformat(),
            },
        ),
        per_tenant=False,
    ),
    Row("GET", "/bookings", "party", 200, fixed("/bookings"), per_tenant=False),
    Row(
        "GET", "/bookings/{booking_id}", "party", 200, lambda _w, s, _r: (f"/bookings/{s.done_booking}", None)
    ),
    Row(
        "POST",
        "/bookings/{booking_id}/cancel",
        "party",
        200,
        lambda _w, s, r: (f"/bookings/{s.live_booking if r == 'driver' else s.live_booking_2}/cancel", None),
    ),
    Row(
        "POST",
        "/bookings/{booking_id}/override",
        "driver",
        200,
        lambda _w, s, _r: (f"/bookings/{s.live_booking}/override", None),
    ),
    Row(
        "GET",
        "/bookings/{booking_id}/receipt",
        "party",
        200,
        lambda _w, s, _r: (f"/bookings/{s.done_booking}/receipt", None),
    ),
    Row(
        "PUT",
        "/bookings/{booking_id}/export-terms",
        "driver",
        200,
        lambda _w, s, _r: (
            f"/bookings/{s.live_booking}/export-terms",
            {"price_per_kwh": 25, "soc_floor_pct": 40},
        ),
    ),
    Row(
        "GET",
        "/bookings/{booking_id}/export",
        "party",
        200,
        lambda _w, s, _r: (f"/bookings/{s.done_booking}/export", None),
    ),
    Row("GET", "/host/export-buyer", "host", 200, fixed("/host/export-buyer"), per_tenant=False),
    Row(
        "PUT",
        "/host/export-buyer",
        "host",
        200,
        fixed("/host/export-buyer", {"buyer": "home"}),
        per_tenant=False,
    ),
    Row("GET", "/sessions", "party", 200, fixed("/sessions"), per_tenant=False),
    Row("GET", "/sessions/{session_id}", "party", 200, lambda _w, s, _r: (f"/sessions/{s.session_id}", None)),
    Row("GET", "/admin/chargers", "admin", 200, fixed("/admin/chargers?status=online"), per_tenant=False),
    Row("GET", "/admin/security-events", "admin", 200, fixed("/admin/security-events"), per_tenant=False),
    Row("GET", "/admin/payments", "admin", 200, fixed("/admin/payments"), per_tenant=False),
    Row(
        "POST",
        "/admin/payments/reconcile",
        "admin",
        200,
        fixed("/admin/payments/reconcile"),
        per_tenant=False,
    ),
    Row("POST", "/admin/payouts", "admin", 200, fixed("/admin/payouts"), per_tenant=False),
    Row(
        "POST",
        "/admin/chargers/{charger_id}/commands",
        "admin",
        200,  # a typed result, here "not_connected"
        lambda _w, s, _r: (f"/admin/chargers/{s.charger_id}/commands", {"action": "Reset", "payload": {}}),
        per_tenant=False,
    ),
    # Files for chargers: the locations are public (the token is the key), the rest is admin's.
    Row(
        "GET",
        "/files/{token}",
        "public",
        200,
        lambda w, _s, _r: (f"/files/{_image(w)}", None),
        per_tenant=False,
    ),
    Row("PUT", "/files/{token}", "public", 201, lambda w, s, _r: (_slot(w, s), {"log": 1}), per_tenant=False),
    Row(
        "POST", "/files/{token}", "public", 201, lambda w, s, _r: (_slot(w, s), {"log": 2}), per_tenant=False
    ),
    Row(
        "POST",
        "/admin/firmware",
        "admin",
        201,
        fixed("/admin/firmware?name=fw.bin", {"image": 1}),
        per_tenant=False,
    ),
    Row("GET", "/admin/firmware", "admin", 200, fixed("/admin/firmware"), per_tenant=False),
    Row(
        "GET",
        "/admin/files/{token}",
        "admin",
        200,
        lambda w, _s, _r: (f"/admin/files/{_image(w)}", None),
        per_tenant=False,
    ),
    Row(
        "POST",
        "/admin/chargers/{charger_id}/logs",
        "admin",
        200,  # a typed result, here "not_connected"
        lambda _w, s, _r: (f"/admin/chargers/{s.charger_id}/logs", {"timeout_s": 1}),
        per_tenant=False,
    ),
    Row(
        "GET",
        "/admin/chargers/{charger_id}/logs",
        "admin",
        200,
        lambda _w, s, _r: (f"/admin/chargers/{s.charger_id}/logs", None),
        per_tenant=False,
    ),
    Row(
        "POST",
        "/admin/chargers/{charger_id}/firmware",
        "admin",
        200,  # a typed result, here "not_connected"
        lambda w, s, _r: (f"/admin/chargers/{s.charger_id}/firmware", {"token": _image(w), "timeout_s": 1}),
        per_tenant=False,
    ),
    Row(
        "PUT",
        "/admin/chargers/{charger_id}/boot-policy",
        "admin",
        200,
        lambda _w, s, _r: (f"/admin/chargers/{s.charger_id}/boot-policy", {"boot_policy": "Accepted"}),
        per_tenant=False,
    ),
    Row(
        "GET",
        "/admin/chargers/{charger_id}/reports",
        "admin",
        200,
        lambda _w, s, _r: (f"/admin/chargers/{s.charger_id}/reports", None),
        per_tenant=False,
    ),
    Row(
        "GET",
        "/admin/chargers/{charger_id}/reported-state",
        "admin",
        200,
        lambda _w, s, _r: (f"/admin/chargers/{s.charger_id}/reported-state", None),
        per_tenant=False,
    ),
    Row(
        "GET", "/admin/unmetered-sessions", "admin", 200, fixed("/admin/unmetered-sessions"), per_tenant=False
    ),
    Row("GET", "/admin/late-stops", "admin", 200, fixed("/admin/late-stops?limit=10"), per_tenant=False),
    Row("GET", "/admin/commands-owed", "admin", 200, fixed("/admin/commands-owed"), per_tenant=False),
    Row(
        "PUT",
        "/admin/hosts/{host_id}/kyc",
        "admin",
        200,
        lambda _w, s, _r: (f"/admin/hosts/{s.host.hid}/kyc", {"status": "verified"}),
        per_tenant=False,  # the operator acts on any host: there is no "own" for an admin
    ),
    Row(
        "PUT",
        "/admin/drivers/{driver_id}/kyc",
        "admin",
        200,
        lambda _w, s, _r: (f"/admin/drivers/{s.driver.did}/kyc", {"status": "verified"}),
        per_tenant=False,  # the operator acts on any driver: there is no "own" for an admin
    ),
    Row("GET", "/admin/tokens", "admin", 200, fixed("/admin/tokens"), per_tenant=False),
    Row(
        "POST",
        "/admin/tokens",
        "admin",
        201,
        lambda _w, s, r: ("/admin/tokens", {"driver_id": s.driver.did, "value": f"CARD-{r}"}),
        per_tenant=False,
    ),
    Row(
        "POST",
        "/admin/tokens/block",
        "admin",
        200,
        lambda _w, s, _r: ("/admin/tokens/block", {"value": "TAG" + s.charge_point_id.removeprefix("CP")}),
        per_tenant=False,
    ),
    Row(
        "PUT",
        "/admin/chargers/{charger_id}/walk-in",
        "admin",
        200,
        lambda _w, s, _r: (f"/admin/chargers/{s.charger_id}/walk-in", {"price_per_kwh": 45}),
        per_tenant=False,
    ),
    Row(
        "PUT",
        "/host/chargers/{charger_id}/walk-in",
        "host",
        200,
        lambda _w, s, _r: (f"/host/chargers/{s.charger_id}/walk-in", {"price_per_kwh": 45}),
    ),
    Row(
        "GET",
        "/host/chargers/{charger_id}/smart-charging",
        "host",
        200,
        lambda _w, s, _r: (f"/host/chargers/{s.charger_id}/smart-charging", None),
    ),
    Row(
        "PUT",
        "/host/chargers/{charger_id}/smart-charging",
        "host",
        200,
        lambda _w, s, _r: (
            f"/host/chargers/{s.charger_id}/smart-charging",
            {
                "randomised_delay_max_s": 900,
                "randomised_delay_override": False,
                "default_charging_hours": False,
            },
        ),
    ),
    Row("GET", "/host/pricing", "host", 200, fixed("/host/pricing"), per_tenant=False),
    Row(
        "PUT",
        "/host/pricing",
        "host",
        200,
        fixed(
            "/host/pricing",
            {
                "mode": "dynamic",
                "floor_per_kwh": 20,
                "ceiling_per_kwh": 60,
                "own_day_per_kwh": 25,
                "own_night_per_kwh": 7,
            },
        ),
        per_tenant=False,
    ),
    Row(
        "GET",
        "/chargers/{charger_id}/quote",
        "public",
        200,
        lambda _w, s, _r: (f"/chargers/{s.charger_id}/quote?minutes=90", None),
    ),
    Row(
        "POST",
        "/chargers/{charger_id}/quotes",
        "driver",
        201,
        # Any driver may have any listed charger's price held for them, as anyone may be quoted it.
        lambda _w, s, _r: (f"/chargers/{s.charger_id}/quotes", {"minutes": 90}),
        per_tenant=False,
    ),
    Row(
        "GET",
        "/admin/chargers/{charger_id}/smart-charging",
        "admin",
        200,
        lambda _w, s, _r: (f"/admin/chargers/{s.charger_id}/smart-charging", None),
        per_tenant=False,
    ),
    Row(
        "PUT",
        "/admin/chargers/{charger_id}/demand-side-response",
        "admin",
        200,
        lambda _w, s, _r: (f"/admin/chargers/{s.charger_id}/demand-side-response", {"active": True}),
        per_tenant=False,
    ),
    # Fleets: the matrix's roles meet them as an operator; a business account's own tenancy (another
    # fleet's resources answer 404) is tested in tests/api/test_fleets_api.py.
    Row(
        "POST",
        "/fleets",
        "admin",
        201,
        lambda _w, _s, r: (
            "/fleets",
            {"name": r, "id_tag": f"FLEET-{r}", "email": f"fleet-{r}@x.example", "password": PASSWORD},
        ),
        per_tenant=False,
    ),
    Row("GET", "/fleets", "admin", 200, fixed("/fleets"), per_tenant=False),
    Row(
        "GET",
        "/fleets/{fleet_id}",
        "admin",
        200,
        lambda w, _s, _r: (f"/fleets/{_fleet(w)}", None),
        per_tenant=False,
    ),
    Row(
        "POST",
        "/fleets/{fleet_id}/blocks",
        "admin",
        201,
        lambda w, s, _r: (
            f"/fleets/{_fleet(w)}/blocks",
            {**BLOCK, "connectors": [{"charger_id": s.spare_charger_id, "connector_no": 1}]},
        ),
        per_tenant=False,
    ),
    Row(
        "GET",
        "/fleets/{fleet_id}/blocks",
        "admin",
        200,
        lambda w, _s, _r: (f"/fleets/{_fleet(w)}/blocks", None),
        per_tenant=False,
    ),
    Row(
        "GET",
        "/fleets/{fleet_id}/occurrences",
        "admin",
        200,
        lambda w, _s, _r: (f"/fleets/{_fleet(w)}/occurrences", None),
        per_tenant=False,
    ),
    Row(
        "POST",
        "/fleets/{fleet_id}/invoices/{month}",
        "admin",
        200,
        lambda w, _s, _r: (f"/fleets/{_fleet(w)}/invoices/2026-02", None),
        per_tenant=False,
    ),
    Row(
        "GET",
        "/fleets/{fleet_id}/invoices",
        "admin",
        200,
        lambda w, _s, _r: (f"/fleets/{_fleet(w)}/invoices", None),
        per_tenant=False,
    ),
    Row(
        "GET",
        "/fleets/{fleet_id}/invoices/{month}",
        "admin",
        200,
        lambda w, _s, _r: (f"/fleets/{_fleet(w)}/invoices/{_invoiced(w)}", None),
        per_tenant=False,
    ),
    Row(
        "POST",
        "/fleets/{fleet_id}/invoices/{month}/payments",
        "admin",
        200,
        lambda w, _s, _r: (f"/fleets/{_fleet(w)}/invoices/{_invoiced(w)}/payments", {"amount": 100}),
        per_tenant=False,
    ),
    Row(
        "GET",
        "/fleets/{fleet_id}/statement",
        "admin",
        200,
        lambda w, _s, _r: (f"/fleets/{_fleet(w)}/statement", None),
        per_tenant=False,
    ),
    # The grid buyer's settlement: the operator's alone, with no tenant in the path.
    Row(
        "GET",
        "/admin/grid-buyer/statements/{month}",
        "admin",
        200,
        lambda w, _s, _r: (f"/admin/grid-buyer/statements/{_export_owed(w)}", None),
        per_tenant=False,
    ),
    Row(
        "POST",
        "/admin/grid-buyer/statements/{month}/payment",
        "admin",
        200,
        lambda w, _s, _r: (f"/admin/grid-buyer/statements/{_export_owed(w)}/payment", {"amount": 120}),
        per_tenant=False,
    ),
    Row(
        "GET",
        "/admin/grid-buyer/settlements",
        "admin",
        200,
        fixed("/admin/grid-buyer/settlements"),
        per_tenant=False,
    ),
    Row("GET", "/host/sites", "host", 200, fixed("/host/sites"), per_tenant=False),
    Row(
        "POST",
        "/host/sites",
        "host",
        201,
        fixed("/host/sites", {"name": "home", "limit_w": 13_800}),
        per_tenant=False,
    ),
    Row(
        "PUT",
        "/host/sites/{site_id}/house-load",
        "host",
        200,
        lambda w, s, _r: (f"/host/sites/{_site(w, s)}/house-load", {"house_load_w": 500}),
    ),
    Row(
        "PUT",
        "/host/chargers/{charger_id}/site",
        "host",
        204,
        lambda _w, s, _r: (f"/host/chargers/{s.charger_id}/site", {"site_id": None}),
    ),
    Row("GET", "/admin/feeders", "admin", 200, fixed("/admin/feeders"), per_tenant=False),
    Row(
        "POST",
        "/admin/feeders",
        "admin",
        201,
        fixed("/admin/feeders", {"name": "F1", "limit_w": 60_000}),
        per_tenant=False,
    ),
    Row("GET", "/admin/sites", "admin", 200, fixed("/admin/sites"), per_tenant=False),
    Row(
        "POST",
        "/admin/sites",
        "admin",
        201,
        lambda _w, s, _r: ("/admin/sites", {"host_id": s.host.hid, "name": "home", "limit_w": 13_800}),
        per_tenant=False,
    ),
    Row("GET", "/admin/flex-events", "admin", 200, fixed("/admin/flex-events"), per_tenant=False),
    Row(
        "POST",
        "/admin/flex-events",
        "admin",
        201,
        lambda w, _s, _r: ("/admin/flex-events", _flex_event(w)),
        per_tenant=False,
    ),
]

ALLOWED = {
    "public": set(ROLES),
    "signed_in": {"driver", "host", "admin"},
    "driver": {"driver"},
    "host": {"host"},
    "party": {"driver", "host"},
    "admin": {"admin"},
}


def expected(row: Row, role: str, own: bool) -> int:
    if row.who == "public":
        return row.ok
    if role == "anonymous":
        return 401
    if role not in ALLOWED[row.who]:
        return 403
    return row.ok if own or not row.per_tenant or row.who == "public" else 404


def headers(w: World, role: str) -> dict[str, str]:
    return {
        "anonymous": {},
        "driver": w.mine.driver.headers,
        "host": w.mine.host.headers,
        "admin": w.admin.headers,
    }[role]


def fingerprint(app: App) -> dict[str, list[str]]:
    """Every row of every table: a refused write must leave all of them as they were."""
    with sql_store(app).engine.connect() as conn:
        return {t.name: sorted(map(str, conn.execute(select(t)))) for t in sql_schema.metadata.sorted_tables}


@pytest.mark.slow
def test_every_operation_has_a_row() -> None:
    with world() as w:
        spec = create_api(w.app).openapi()
    operations = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert operations == {(r.method, r.path) for r in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.method} {r.path}")
@pytest.mark.slow
async def test_matrix(row: Row) -> None:
    with world() as w:
        async with client(w.app) as http:
            # The refused first (each leaves no trace), then those allowed, each on their own resource.
            for role, own in sorted(
                ((role, own) for role in ROLES for own in ((False, True) if row.per_tenant else (True,))),
                key=lambda x: expected(row, *x) == row.ok,
            ):
                side = w.mine if own else w.theirs
                url, body = row.request(w, side, role)
                want = expected(row, role, own)
                before = fingerprint(w.app) if want != row.ok else None
                r = await http.request(row.method, url, json=body, headers=headers(w, role))
                assert r.status_code == want, (role, "own" if own else "other's", r.text[:300])
                if before is not None:
                    assert r.json()["error"] in ("unauthorized", "forbidden", "not_found")
                    assert fingerprint(w.app) == before, "a refused request changed the database"
                elif row.method == "GET" and row.path in ("/bookings", "/sessions", "/host/chargers"):
                    assert_only_own(w, role, row.path, r.json())


def assert_only_own(w: World, role: str, path: str, items: list[dict[str, Any]]) -> None:
    """Listings hold the caller's own things, and all of them."""
    mine = w.mine
    if path == "/host/chargers":
        assert {c["id"] for c in items} == {mine.charger_id, mine.spare_charger_id}
        return
    key = "id" if path == "/bookings" else "booking_id"
    got = {x[key] for x in items}
    everything = {mine.done_booking, mine.live_booking, mine.live_booking_2}
    want = everything if path == "/bookings" else {mine.done_booking}
    assert got == want, (role, path)
