"""`chargeshare accounts`: operator accounts, hosts' KYC status, the seller details HMRC's platform
reporting needs and hosts' pricing, straight in the backend's database."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from chargeshare.cli.open_backend import DatabaseUrl, open_app
from chargeshare.cli.options import chatter, json_list_option, write_rows
from chargeshare.domain.accounts import KycStatus
from chargeshare.domain.availability import UK
from chargeshare.domain.dynamic_pricing import MAX_PRICE_PER_KWH, HostPricing, PricingMode, SmartTariff
from chargeshare.domain.seller_details import SellerKind, seller_details
from chargeshare.domain.v2g import ExportBuyer

if TYPE_CHECKING:
    from chargeshare.domain.seller_details import SellerDetails

app = typer.Typer(
    help="Accounts, admin accounts, hosts' KYC status, seller details and pricing.", no_args_is_help=True
)
console = Console(soft_wrap=True)


@app.command("add-admin")
def add_admin(
    email: Annotated[str, typer.Argument(help="The operator's email.")],
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="10 to 128 characters."),
    ],
    database_url: DatabaseUrl = None,
) -> None:
    """Create an admin account (admins are never made through the API)."""
    with open_app(database_url) as a:
        account = a.auth.add_admin(email, password)
    console.print(f"admin account {account.account_id} for {account.email}")


@app.command("kyc")
def kyc(
    host_id: Annotated[int, typer.Argument(help="The host's id.")],
    status: Annotated[KycStatus, typer.Argument(help="The outcome of the host's identity checks.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Record a host's KYC status; only verified hosts are paid out."""
    with open_app(database_url) as a:
        host = a.hosting.set_kyc(host_id, status)
    console.print(f"host {host.host_id} ({host.name}): KYC {host.kyc_status}")


@app.command("export-buyer")
def export_buyer(
    host_id: Annotated[int, typer.Argument(help="The host's id.")],
    buyer: Annotated[
        ExportBuyer | None,
        typer.Argument(help="Who buys the host's guests' V2G export from now on; none: show it."),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Show or set who buys a host's guests' V2G export: the grid buyer (the default) or the host's
    home, charged to its earnings. An export already started keeps its buyer."""
    with open_app(database_url) as a:
        chosen = a.v2g.buyer_of(host_id) if buyer is None else a.v2g.set_buyer_for(host_id, buyer)
    by = "the grid buyer" if chosen is ExportBuyer.GRID else "the host's home"
    console.print(f"host {host_id}: guests' V2G export bought by {by}")


@app.command("list")
def list_accounts(
    role: Annotated[str | None, typer.Option(help="Only this role: driver, host or admin.")] = None,
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """Every account with its role; hosts with their host id (what `accounts kyc` takes) and KYC."""
    if role not in (None, "driver", "host", "admin"):
        raise typer.BadParameter(f"{role!r}: choose driver, host or admin", param_hint="--role")
    with open_app(database_url) as a, a.store.reading() as tx:
        accounts = [x for x in tx.accounts.all() if role in (None, x.role)]
        hosts = {h.host_id: h for h in tx.accounts.hosts()}
    if json_out is not None:
        rows = []
        for x in accounts:
            host = None if x.host_id is None else hosts.get(x.host_id)
            rows.append(
                {"account_id": x.account_id, "email": x.email, "role": x.role, "host_id": x.host_id}
                | {"host_name": None if host is None else host.name, "driver_id": x.driver_id}
                | {"kyc_status": None if host is None else str(host.kyc_status)}
            )
        write_rows(json_out, rows)
        return
    table = Table("account", "email", "role", "host id", "host", "KYC", "driver id")
    for x in accounts:
        host = None if x.host_id is None else hosts.get(x.host_id)
        table.add_row(
            str(x.account_id),
            x.email,
            x.role,
            "" if x.host_id is None else str(x.host_id),
            "" if host is None else host.name,
            "" if host is None else host.kyc_status,
            "" if x.driver_id is None else str(x.driver_id),
        )
    console.print(table)
    chatter(console).print(f"{len(accounts)} accounts")


def _birth_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date: give YYYY-MM-DD", param_hint="--birth-date"
        ) from None


def _details_rows(d: SellerDetails) -> list[tuple[str, str]]:
    rows = [("kind", d.kind.value), ("name", d.name)]
    if d.birth_date is not None:
        rows.append(("date of birth", d.birth_date.isoformat()))
    rows += [
        ("address", d.address.one_line()),
        ("tax identifier", f"{d.tax_id.kind.value} {d.tax_id.value} ({d.tax_id.country})"),
    ]
    if d.company_number:
        rows.append(("company number", d.company_number))
    rows.append(("bank account", "none given" if d.bank is None else f"{d.bank.kind}: {d.bank.identifier}"))
    return rows


def _details_json(d: SellerDetails | None) -> dict[str, str] | None:
    if d is None:
        return None
    return {
        "kind": d.kind.value,
        "name": d.name,
        "birth_date": "" if d.birth_date is None else d.birth_date.isoformat(),
        "address": d.address.one_line(),
        "country": d.address.country,
        "tax_id_kind": d.tax_id.kind.value,
        "tax_id": d.tax_id.value,
        "tax_id_country": d.tax_id.country,
        "company_number": d.company_number,
        "bank_account": "" if d.bank is None else d.bank.identifier,
    }


@app.command("seller-details")
def show_seller_details(
    host_id: Annotated[int, typer.Argument(help="The host's id.")],
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """The details a host gave for HMRC's platform reporting (name, address, tax identifier, bank)."""
    with open_app(database_url) as a:
        details = a.hosting.seller_details(host_id)
        host = a.hosting.host(host_id)
    if json_out is not None:
        write_rows(
            json_out,
            {"host_id": host_id, "kyc_status": str(host.kyc_status), "details": _details_json(details)},
        )
        return
    if details is None:
        console.print(f"host {host_id} ({host.name}) has given no seller details")
        return
    table = Table("field", "value", title=f"host {host_id}: seller details (KYC {host.kyc_status})")
    for field, value in _details_rows(details):
        table.add_row(field, value)
    console.print(table)


@app.command("set-seller-details")
def set_seller_details(
    host_id: Annotated[int, typer.Argument(help="The host's id.")],
    kind: Annotated[SellerKind, typer.Option(help="A person, or a company, partnership or trust.")],
    address_line1: Annotated[str, typer.Option(help="Primary residence (a person) or registered office.")],
    city: Annotated[str, typer.Option(help="The address's town or city.")],
    country: Annotated[str, typer.Option(help="ISO 3166 two-letter code, e.g. GB.")],
    first_names: Annotated[str, typer.Option(help="A person's given names.")] = "",
    last_name: Annotated[str, typer.Option(help="A person's family name.")] = "",
    legal_name: Annotated[str, typer.Option(help="An entity's registered name.")] = "",
    birth_date: Annotated[str | None, typer.Option(help="A person's, as YYYY-MM-DD.")] = None,
    address_line2: Annotated[str, typer.Option(help="The address's second line, if any.")] = "",
    postcode: Annotated[str, typer.Option(help="Required for a UK address.")] = "",
    nino: Annotated[str, typer.Option(help="A UK resident person's National Insurance number.")] = "",
    utr: Annotated[
        str, typer.Option(help="A UK Unique Taxpayer Reference (a person's or a company's).")
    ] = "",
    tin: Annotated[str, typer.Option(help="Another country's tax identification number.")] = "",
    tin_country: Annotated[str, typer.Option(help="The country that issued --tin.")] = "",
    company_number: Annotated[str, typer.Option(help="An entity's Companies House number.")] = "",
    sort_code: Annotated[str, typer.Option(help="With --account-number; or give --iban.")] = "",
    account_number: Annotated[str, typer.Option(help="A UK account number: 8 digits.")] = "",
    iban: Annotated[str, typer.Option(help="An IBAN, instead of a sort code and account number.")] = "",
    database_url: DatabaseUrl = None,
) -> None:
    """Record a host's seller details, checked field by field. Changing details the operator had
    verified sends the host back to KYC pending."""
    given = [(k, v) for k, v in (("nino", nino), ("utr", utr), ("tin", tin)) if v.strip()]
    if len(given) != 1:
        raise typer.BadParameter("give one tax identifier: --nino, --utr or --tin (with --tin-country)")
    (tax_id_kind, tax_id), *_ = given
    with open_app(database_url) as a:
        details = seller_details(
            kind=kind,
            first_names=first_names,
            last_name=last_name,
            legal_name=legal_name,
            birth_date=_birth_date(birth_date),
            address_line1=address_line1,
            address_line2=address_line2,
            city=city,
            postcode=postcode,
            country=country,
            tax_id_kind=tax_id_kind,
            tax_id=tax_id,
            tax_id_country=tin_country,
            company_number=company_number,
            sort_code=sort_code,
            account_number=account_number,
            iban=iban,
            today=a.clock.now().astimezone(UK).date(),
        )
        host = a.hosting.set_seller_details(host_id, details)
    console.print(
        f"host {host.host_id} ({host.name}): seller details kept for {details.name}; KYC {host.kyc_status}"
    )


@app.command("pricing")
def pricing(
    host_id: Annotated[int, typer.Argument(help="The host's id.")],
    mode: Annotated[
        PricingMode | None, typer.Option(help="Set the host's pricing: flat or dynamic (else show it).")
    ] = None,
    floor: Annotated[int | None, typer.Option(help="Dynamic prices never go below this (pence/kWh).")] = None,
    ceiling: Annotated[
        int | None, typer.Option(help="Dynamic prices never go above this (pence/kWh).")
    ] = None,
    own_day: Annotated[int | None, typer.Option(help="What the host pays by day (pence/kWh).")] = None,
    own_night: Annotated[
        int | None, typer.Option(help="What the host pays 00:00-07:00 UK time (pence/kWh).")
    ] = None,
    database_url: DatabaseUrl = None,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """Show a host's pricing, or set it with --mode: dynamic needs --floor, --ceiling, --own-day and
    --own-night; flat keeps the bounds given before. Bookings already made keep their price."""
    bounds = {"--floor": floor, "--ceiling": ceiling, "--own-day": own_day, "--own-night": own_night}
    with open_app(database_url) as a:
        settings = a.pricing.settings(host_id)
        if mode is not None:
            settings = _pricing_to_set(mode, settings, bounds)
            a.pricing.set_settings(host_id, settings)
        host = a.hosting.host(host_id)
    if json_out is not None:
        write_rows(json_out, {"host_id": host_id} | _pricing_json(settings))
        return
    if settings is None:
        console.print(f"host {host_id} ({host.name}): flat, each charger's listed price (nothing set)")
        return
    console.print(
        f"host {host_id} ({host.name}): {settings.mode.value}, {settings.floor_per_kwh}p to "
        f"{settings.ceiling_per_kwh}p per kWh; own tariff {settings.own_tariff.day_per_kwh}p by day, "
        f"{settings.own_tariff.night_per_kwh}p by night"
    )


def _pricing_to_set(
    mode: PricingMode, before: HostPricing | None, bounds: dict[str, int | None]
) -> HostPricing:
    """All four bounds given: those. None: the host's bounds before, in the new mode (flat with
    nothing before takes the widest: a flat price never reads them)."""
    missing = [flag for flag, value in bounds.items() if value is None]
    if not missing:
        floor, ceiling, day, night = (v or 0 for v in bounds.values())
        return HostPricing(mode, floor, ceiling, SmartTariff(day, night))
    if len(missing) < len(bounds):
        raise typer.BadParameter(f"give {', '.join(missing)} as well", param_hint="--mode")
    if before is not None:
        return replace(before, mode=mode)
    if mode is PricingMode.DYNAMIC:
        raise typer.BadParameter("dynamic pricing needs --floor, --ceiling, --own-day and --own-night")
    return HostPricing(mode, 1, MAX_PRICE_PER_KWH, SmartTariff(0, 0))


def _pricing_json(s: HostPricing | None) -> dict[str, object]:
    if s is None:
        return {"mode": "flat", "configured": False}
    return {
        "mode": s.mode.value,
        "configured": True,
        "floor_per_kwh": s.floor_per_kwh,
        "ceiling_per_kwh": s.ceiling_per_kwh,
        "own_day_per_kwh": s.own_tariff.day_per_kwh,
        "own_night_per_kwh": s.own_tariff.night_per_kwh,
    }
