"""Request and response bodies of the REST API. Money in integer pence, energy in integer Wh."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from chargeshare.domain.charger import BootPolicy, ConnectorType
from chargeshare.domain.dynamic_pricing import MAX_PRICE_PER_KWH
from chargeshare.domain.instants import RANGE, in_range
from chargeshare.domain.smart_charge_points import DELAY_CAPABLE_MAX_S
from chargeshare.domain.tokens import (
    MAX_GROUP_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TOKEN_LENGTH,
    TokenStatus,
    TokenType,
)
from chargeshare.domain.v2g import MAX_EXPORT_PRICE, MIN_SOC_FLOOR


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text may not contain NUL characters")  # PostgreSQL cannot store them
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


def _in_range(value: datetime) -> datetime:
    if not in_range(value):
        raise ValueError(f"times must lie {RANGE}")
    return value


Instant = Annotated[datetime, AfterValidator(_in_range)]
"""Every time the API takes, in bodies and queries: checked against the domain's range before any
arithmetic or storage can overflow on it."""


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        # Read as UTC or as the server's zone, a UK summer time would be an hour out: refused.
        raise ValueError("a time must say its time zone (e.g. 2026-06-01T18:00:00Z or +01:00)")
    return value


AwareInstant = Annotated[datetime, AfterValidator(_aware), AfterValidator(_in_range)]
"""An Instant that must carry its offset: where a wrong guess at the zone moves a limit or a price."""


class Problem(BaseModel):
    """Every 4xx and 5xx answer: a stable code and a sentence for people."""

    error: str
    detail: str


# ---- accounts ------------------------------------------------------------------------------------
class DriverSignUp(BaseModel):
    email: Text = Field(min_length=3, max_length=254)
    password: Text = Field(min_length=10, max_length=128)
    name: Text = Field(min_length=1, max_length=200)
    id_tag: Text | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TAG_LENGTH,
        description="the RFID tag or app id; made up if omitted",
    )


class HostSignUp(BaseModel):
    email: Text = Field(min_length=3, max_length=254)
    password: Text = Field(min_length=10, max_length=128)
    name: Text = Field(min_length=1, max_length=200)


class LoginIn(BaseModel):
    email: Text = Field(min_length=1, max_length=254)
    password: Text = Field(min_length=1, max_length=128)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    role: str
    account_id: int
    driver_id: int | None = None
    host_id: int | None = None


class AccountOut(BaseModel):
    account_id: int
    email: str
    role: str
    driver_id: int | None = None
    host_id: int | None = None
    id_tag: Text | None = Field(default=None, description="drivers: the tag a charger is given")
    kyc_status: str | None = Field(default=None, description="hosts: pending, verified or rejected")


# ---- chargers ------------------------------------------------------------------------------------
class ConnectorOut(BaseModel):
    connector_no: int
    type: str
    max_power_w: int
    status: str


class ChargerOut(BaseModel):
    id: int
    charge_point_id: str
    host_id: int
    title: str
    lat: float
    lon: float
    price_per_kwh: int = Field(description="pence per kWh")
    status: str
    connectors: list[ConnectorOut]
    distance_m: float | None = Field(default=None, description="from the centre, for radius searches")


class WindowIO(BaseModel):
    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    start_minute: int = Field(ge=0, lt=1440, description="minutes after local (UK) midnight")
    end_minute: int = Field(gt=0, le=1440)


class HostChargerOut(ChargerOut):
    boot_policy: BootPolicy = Field(description="Accepted: in service; Pending or Rejected: not")
    access_notes: str
    availability: list[WindowIO] = Field(description="weekly calendar; empty means always open")
    ocpp_version: str | None
    last_seen_at: datetime | None


class BootPolicyIn(BaseModel):
    boot_policy: BootPolicy = Field(description="how the charger's BootNotification is answered")


class BootPolicyOut(BaseModel):
    boot_policy: BootPolicy
    status: str
    boot_requested: bool = Field(description="the charger was asked to boot again, so it learns at once")


class ConnectorIn(BaseModel):
    connector_no: int = Field(ge=1, le=99)
    type: ConnectorType = ConnectorType.TYPE2
    max_power_w: int = Field(ge=1000, le=400_000)


class ChargerIn(BaseModel):
    charge_point_id: Text = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9_.\-]+$")
    title: Text = Field(default="", max_length=200)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    price_per_kwh: int = Field(ge=1, le=1000, description="pence per kWh")
    connectors: list[ConnectorIn] = Field(min_length=1, max_length=8)
    access_notes: Text = Field(default="", max_length=2000)


class ChargerCreated(BaseModel):
    charger: HostChargerOut
    password: Text = Field(description="the charger's OCPP Basic-auth password; shown once")


class ChargerPatch(BaseModel):
    title: Text | None = Field(default=None, max_length=200)
    price_per_kwh: int | None = Field(default=None, ge=1, le=1000)
    access_notes: Text | None = Field(default=None, max_length=2000)


class ConnectorPatch(BaseModel):
    type: ConnectorType | None = None
    max_power_w: int | None = Field(default=None, ge=1000, le=400_000)


# ---- bookings, sessions, receipts -------------------------------------------------------------------
class BookingIn(BaseModel):
    charger_id: int = Field(ge=1, le=2**31 - 1)
    connector_no: int = Field(default=1, ge=1, le=99)
    minutes: int = Field(ge=1, le=24 * 60)
    max_energy_wh: int = Field(ge=1, le=1_000_000)
    starts_at: Instant | None = Field(default=None, description="omit to charge now; with a time zone")
    override_smart_charging: bool = Field(
        default=False,
        description="charge without the charger's randomised delay and outside its default charging "
        "hours (the end-user's override under the UK's Smart Charge Points Regulations 2021)",
    )
    max_price_per_kwh: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="pence: the most you accept (the quote you were shown); a dearer price is a 409",
    )
    quote_id: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="a quote held for you (POST /chargers/{id}/quotes): booked at its price, for its "
        "charger and window, or refused (409 quote_expired or quote_used, 422 quote_mismatch)",
    )


class ReceiptOut(BaseModel):
    booking_id: int
    energy_wh: int
    price_per_kwh: int = Field(description="pence per kWh")
    energy_cost: int = Field(description="pence for the energy")
    idle_fee: int = Field(description="pence for staying plugged in after charging, included in cost")
    cost: int = Field(description="pence captured in all")
    platform_fee: int = Field(description="the platform's fee inside the cost, VAT included")
    vat: int = Field(description="the VAT inside the platform fee")
    host_share: int
    unmetered: bool = Field(
        description="the charger sent no measurement to bill by (its start or end register was never "
        "read): energy_wh is what the readings allow, often 0"
    )


class BookingOut(BaseModel):
    id: int
    driver_id: int
    charger_id: int
    connector_id: int
    starts_at: datetime
    ends_at: datetime
    status: str
    max_energy_wh: int
    price_per_kwh: int
    hold_amount: int
    fee: int = Field(description="no-show or late-cancellation fee charged, pence")
    cancelled_by: str | None = None
    reservation: str = Field(
        description="none | sent | accepted | occupied | expired: the ReserveNow asked of the charger "
        "and its answer (occupied: asked again once the connector is free)"
    )
    connector_held: bool = Field(
        default=False,
        description="the connector was found taken or unusable after the start: a no-show pays no fee",
    )
    session_id: int | None = None
    receipt: ReceiptOut | None = None
    access_notes: Text | None = Field(default=None, description="the host's notes, for a live booking")
    override_smart_charging: bool = Field(
        default=False, description="the driver overrode the randomised delay and default charging hours"
    )


class SessionOut(BaseModel):
    id: int
    booking_id: int
    charger_id: int
    status: str
    started_at: datetime
    stopped_at: datetime | None
    energy_wh: int = Field(description="so far, or billed once stopped")
    cost: int = Field(description="pence so far at the booking's price, or the final cost")


# ---- host money ----------------------------------------------------------------------------------
class PayoutOut(BaseModel):
    id: str
    amount: int
    paid_at: datetime


class EarningsOut(BaseModel):
    host_id: int
    kyc_status: str
    gross_consideration: int = Field(description="pence drivers paid for this host's charging")
    fees_withheld: int = Field(description="the platform's fees, VAT included")
    earned: int = Field(description="the host's share")
    home_export_bought: int = Field(
        description="pence of guests' V2G export bought by the host's home, deducted from its earnings"
    )
    paid_out: int
    balance: int = Field(description="earned less the home's export bought, not paid out yet (below 0: owed)")
    activities: int


class QuarterOut(BaseModel):
    quarter: int = Field(ge=1, le=4)
    gross_consideration: int
    fees_withheld: int
    net_paid: int
    activities: int


class StatementOut(BaseModel):
    host_id: int
    year: int
    currency: str = "GBP"
    gross_consideration: int
    fees_withheld: int
    net_paid: int
    activities: int
    quarters: list[QuarterOut]


# ---- seller details (HMRC digital platform reporting) ---------------------------------------------
DetailText = Annotated[str, AfterValidator(_no_nul), Field(max_length=1000)]  # the domain says what fits


class SellerDetailsIn(BaseModel):
    """What HMRC's platform reporting asks of a host; checked field by field (400 `invalid_field`
    naming the field: `detail` starts with its name)."""

    kind: Literal["individual", "entity"]
    first_names: DetailText = Field("", description="individuals, as on their identity documents")
    last_name: DetailText = Field("", description="individuals")
    legal_name: DetailText = Field("", description="entities: the registered name")
    birth_date: date | None = Field(None, description="individuals")
    address_line1: DetailText = Field(
        description="an individual's primary residence, an entity's registered office"
    )
    address_line2: DetailText = ""
    city: DetailText
    postcode: DetailText = Field("", description="required for a UK address")
    country: DetailText = Field(description="ISO 3166-1 alpha-2, e.g. GB")
    tax_id_kind: Literal["nino", "utr", "tin"] = Field(
        description="nino or utr for a UK resident; tin (with tax_id_country) for a resident elsewhere"
    )
    tax_id: DetailText
    tax_id_country: DetailText = Field("", description="the TIN's issuer (a tin only)")
    company_number: DetailText = Field("", description="entities registered at Companies House")
    sort_code: DetailText = Field("", description="with account_number; or give an iban; or neither")
    account_number: DetailText = ""
    iban: DetailText = ""


class SellerDetailsOut(BaseModel):
    host_id: int
    kyc_status: str = Field(description="changing details the operator verified sends it back to pending")
    kind: str
    name: str
    first_names: str
    last_name: str
    legal_name: str
    birth_date: date | None
    address_line1: str
    address_line2: str
    city: str
    postcode: str
    country: str
    tax_id_kind: str
    tax_id: str
    tax_id_country: str
    company_number: str
    sort_code: str
    account_number: str
    iban: str


# ---- admin ---------------------------------------------------------------------------------------
class PaymentStepOut(BaseModel):
    id: int
    booking_id: int
    step: str
    amount: int
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


class OutboxRunOut(BaseModel):
    done: int
    retried: int
    dead: int
    dead_letters_left: int


class SkippedPayout(BaseModel):
    host_id: int
    amount: int = Field(description="pence owed and not paid")
    reason: str


class WithheldExportPayout(BaseModel):
    driver_id: int
    amount: int = Field(description="pence of V2G export credit owed and not paid")
    reason: str


class PayoutRunOut(BaseModel):
    paid: dict[str, int] = Field(description="host id -> pence paid")
    skipped: list[SkippedPayout]
    export_credits_paid: dict[str, int] = Field(description="driver id -> pence of V2G export credit paid")
    export_credits_withheld: list[WithheldExportPayout] = Field(
        description="drivers owed export credit and not paid: their payout details are not verified"
    )


class DriverKycOut(BaseModel):
    driver_id: int
    kyc_status: str = Field(description="pending, verified or rejected: only verified drivers are paid")


class HostOut(BaseModel):
    host_id: int
    name: str
    kyc_status: str


class KycIn(BaseModel):
    status: str = Field(pattern="^(pending|verified|rejected)$")


class AdminChargerOut(BaseModel):
    id: int
    charge_point_id: str
    host_id: int
    status: str
    boot_policy: BootPolicy
    ocpp_version: str | None
    last_seen_at: datetime | None


class SecurityEventOut(BaseModel):
    id: int
    charge_point_id: str
    kind: str
    detail: str
    at: datetime
    source: str = Field(
        description="backend: what we saw the charger do; charger: a SecurityEventNotification it sent"
    )


class ChargerReportOut(BaseModel):
    id: int
    action: str = Field(description="the OCPP action the charger sent")
    summary: str
    body: dict[str, Any] = Field(description="the message's payload, as received")
    reported_at: datetime | None = Field(description="the charger's own time for it, if it gave one")
    received_at: datetime


class LatestStatusOut(BaseModel):
    kind: str = Field(description="firmware, firmware_publishing, log or diagnostics")
    status: str
    request_id: int | None
    action: str
    at: datetime


class DeviceVariableOut(BaseModel):
    component: str
    variable: str
    attribute: str
    value: str | None
    mutability: str | None
    evse_id: int | None
    connector_id: int | None
    component_instance: str | None
    variable_instance: str | None
    reported_at: datetime | None


class ChargingLimitOut(BaseModel):
    source: str
    evse_id: int | None = Field(description="null: the whole charger")
    grid_critical: bool | None
    schedules: list[dict[str, Any]]
    since: datetime


class EvChargingNeedsOut(BaseModel):
    evse_id: int
    transfer_mode: str
    energy_wh: int | None
    departure_at: str | None
    needs: dict[str, Any]
    reported_at: datetime
    schedule: dict[str, Any] | None


class ReportedStateOut(BaseModel):
    """What a charger's reports add up to now."""

    charge_point_id: str
    statuses: list[LatestStatusOut]
    device_model: list[DeviceVariableOut]
    charging_limits: list[ChargingLimitOut]
    ev_charging_needs: list[EvChargingNeedsOut]


class UnmeteredSessionOut(BaseModel):
    session_id: int
    booking_id: int
    charge_point_id: str | None
    started_at: datetime
    stopped_at: datetime | None
    billed_wh: int | None


class LateStopOut(BaseModel):
    """One row per session that took late stops: where they all left it, not each stop."""

    session_id: int
    booking_id: int
    charge_point_id: str | None
    outcome: Literal["rebilled", "unbilled"] = Field(
        description="rebilled: a late stop came while its capture was untried, so it is billed on "
        "that reading in full; unbilled: a late stop came after, and its reading is kept with the "
        "energy above the billed reading left unbilled (a rebill before it shows in rebilled_at)"
    )
    late_stop_wh: int = Field(
        description="the highest import register reading kept (rebilled: the one billed)"
    )
    billed_wh: int = Field(description="the session's billed energy")
    cost: int = Field(description="the session's billed pence, idle fee included")
    unbilled_wh: int = Field(description="delivered after the billed reading, not billed (0 if rebilled)")
    unbilled_p: int = Field(description="what the unbilled Wh cost at the session's price")
    late_export_wh: int | None = Field(
        description="a V2G session's highest export register reading a late stop brought"
    )
    uncredited_export_wh: int = Field(
        description="exported after the credited reading, not credited: kept, or worth less than "
        "a penny yet (credited with a later reading)"
    )
    uncredited_export_p: int = Field(description="what the uncredited export is worth at the driver's price")
    rebilled_at: datetime | None = Field(description="when a late stop last billed it in full")
    at: datetime = Field(description="when its last late stop was applied")


# ---- id tokens and walk-in -------------------------------------------------------------------------
class IdTokenIn(BaseModel):
    driver_id: int = Field(ge=1, le=2**31 - 1)  # ids are 32-bit in the database
    value: Text = Field(
        min_length=1, max_length=MAX_TOKEN_LENGTH, description="the token as the charger reads it"
    )
    type: TokenType = TokenType.ISO14443
    status: TokenStatus = TokenStatus.ACCEPTED
    expires_at: Instant | None = None
    group_id: Text | None = Field(default=None, min_length=1, max_length=MAX_GROUP_LENGTH)
    master_pass: bool = False


class IdTokenValueIn(BaseModel):
    value: Text = Field(
        min_length=1, max_length=MAX_TOKEN_LENGTH, description="a token, or a driver's booking id tag"
    )


class IdTokenOut(BaseModel):
    id: int
    driver_id: int
    value: str
    type: TokenType
    status: TokenStatus = Field(description="as set")
    status_now: TokenStatus = Field(description="as answered to chargers now (past its expiry: Expired)")
    expires_at: datetime | None
    group_id: str | None
    master_pass: bool
    created_at: datetime


class WalkInIO(BaseModel):
    price_per_kwh: int | None = Field(
        ge=1, le=1_000, description="pence per kWh for any valid token without a booking; null: bookings only"
    )


class SmartChargingIn(BaseModel):
    """The owner's choices under the Smart Charge Points Regulations 2021."""

    randomised_delay_max_s: int = Field(
        ge=0, le=DELAY_CAPABLE_MAX_S, description="the randomised delay's maximum, seconds (default 600)"
    )
    randomised_delay_override: bool = Field(description="start and change the rate without a delay")
    default_charging_hours: bool = Field(
        description="keep the default charging hours: nothing drawn 08:00-11:00 and 16:00-22:00 on weekdays"
    )


class DemandSideResponseIn(BaseModel):
    active: bool = Field(description="the charger is providing response DSR services now")


class SmartChargingOut(BaseModel):
    charger_id: int
    randomised_delay_max_s: int
    randomised_delay_override: bool
    default_charging_hours: bool
    demand_side_response: bool = Field(description="providing response DSR services (the operator's flag)")
    configured: bool = Field(description="false: nobody chose anything; the charger's own defaults stand")


class HostPricingIn(BaseModel):
    """A host's pricing: flat charges each charger's listed price; dynamic moves it with the time
    of day, the area's bookings, the grid's carbon intensity and the weather, within the bounds."""

    mode: Literal["flat", "dynamic"]
    floor_per_kwh: int = Field(ge=1, le=MAX_PRICE_PER_KWH, description="pence: never below this")
    ceiling_per_kwh: int = Field(ge=1, le=MAX_PRICE_PER_KWH, description="pence: never above this")
    own_day_per_kwh: int = Field(ge=0, le=MAX_PRICE_PER_KWH, description="pence: what you pay by day")
    own_night_per_kwh: int = Field(
        ge=0, le=MAX_PRICE_PER_KWH, description="pence: what you pay 00:00-07:00 UK time"
    )


class HostPricingOut(BaseModel):
    host_id: int
    mode: Literal["flat", "dynamic"]
    configured: bool = Field(description="false: nothing set; each charger's listed price stands")
    floor_per_kwh: int | None = None
    ceiling_per_kwh: int | None = None
    own_day_per_kwh: int | None = None
    own_night_per_kwh: int | None = None


class QuoteOut(BaseModel):
    charger_id: int
    starts_at: datetime
    ends_at: datetime
    price_per_kwh: int = Field(description="pence: what a booking made now for this window is charged")
    mode: Literal["flat", "dynamic"]
    adjustments_bps: dict[str, int] = Field(description="each signal's move of the listed price")
    bounded_by: str | None = Field(description="floor, ceiling or own_tariff when a bound set the price")
    utilisation_permille: int = Field(description="of the chargers nearby, booked over the window")


class HeldQuoteIn(BaseModel):
    starts_at: AwareInstant | None = Field(default=None, description="omit to charge now; with a time zone")
    minutes: int = Field(ge=1, le=24 * 60)


class HeldQuoteOut(QuoteOut):
    quote_id: int = Field(description="name it as a booking's quote_id to book at this price")
    driver_id: int
    charge_now: bool = Field(
        description="quoted to charge now: held for a booking made now (no starts_at), not from starts_at"
    )
    quoted_at: datetime
    expires_at: datetime = Field(description="a booking naming the quote after this is a 409 quote_expired")


# ---- site and feeder limits ------------------------------------------------------------------------
Watts = Annotated[int, Field(ge=0, le=100_000_000)]


class FeederIn(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    limit_w: Watts = Field(description="the limit the distribution network operator sets, W (more than 0)")


class FeederOut(BaseModel):
    feeder_id: int
    name: str
    limit_w: int


class HostSiteIn(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    limit_w: Watts = Field(description="the supply's limit (the main fuse: 60 A at 230 V is 13,800 W)")
    house_load_w: Watts = Field(default=0, description="what the house draws besides the chargers, W")


class SiteIn(HostSiteIn):
    host_id: int
    feeder_id: int | None = None


class HouseLoadIn(BaseModel):
    house_load_w: Watts
    measured_at: AwareInstant | None = Field(
        default=None,
        description="when the meter measured it, with a time zone; omitted: when the server is told",
    )


class ChargerSiteIn(BaseModel):
    site_id: int | None = Field(description="the site the charger is on; null: on none")


class SiteOut(BaseModel):
    site_id: int
    host_id: int
    name: str
    limit_w: int
    house_load_w: int
    house_load_at: datetime | None = Field(description="when the house load in force was measured")
    feeder_id: int | None
    charger_ids: list[int]


class HouseLoadOut(SiteOut):
    applied: bool = Field(
        description="false: the reading was older than the one in force, which stands (shown here)"
    )


class FlexEventIn(BaseModel):
    """A DNO's flexibility event: the limit of a site or a feeder lowered for a window."""

    scope: Literal["site", "feeder"]
    target_id: int
    limit_w: Watts
    starts_at: AwareInstant = Field(description="with a time zone")
    ends_at: AwareInstant = Field(description="with a time zone")


class FlexEventOut(BaseModel):
    event_id: int
    scope: str
    target_id: int
    limit_w: int
    starts_at: datetime
    ends_at: datetime


class ExportTermsIn(BaseModel):
    """A driver's V2G terms for one booking (OCPP 2.1 chargers discharge in peak hours)."""

    price_per_kwh: int = Field(ge=0, le=MAX_EXPORT_PRICE, description="export price, pence per kWh")
    soc_floor_pct: int = Field(
        ge=MIN_SOC_FLOOR, le=100, description="the lowest state of charge the car may be discharged to, %"
    )


class ExportTermsOut(BaseModel):
    price_per_kwh: int
    soc_floor_pct: int
    set_at: datetime


class ExportBuyerIn(BaseModel):
    """A host's choice of who buys its chargers' guests' V2G export."""

    buyer: Literal["grid", "home"] = Field(description="who buys your guests' V2G export from now on")


class ExportBuyerOut(BaseModel):
    buyer: str = Field(description="grid (the grid buyer) or home (your home, charged to your earnings)")


class RefusalsOut(BaseModel):
    """How often a session's charger refused a command owed to it, and when it is asked again."""

    count: int = Field(description="refusals since it last accepted")
    last_at: Instant
    retry_at: Instant | None = Field(description="asked again from then; None: given up for the session")
    given_up: bool = Field(description="refused too often: no longer asked for this session")


class OwedCommandOut(BaseModel):
    """A V2G export or driver's override owed to a session's charger until it takes it."""

    charge_point_id: str
    kind: str = Field(description="export or override")
    session_id: int
    state: str = Field(
        description="owed (asked at the next sweep), waiting (refused, asked from retry_at) or refused"
    )
    refusals: int
    retry_at: Instant | None


class OverrideOut(BaseModel):
    booking_id: int
    charger_told_now: bool = Field(
        description="its session runs, so its charger is told now; otherwise when the session starts"
    )


class ExportOut(BaseModel):
    """A booking's V2G export as metered from the export register, and its credit once stopped."""

    booking_id: int
    terms: ExportTermsOut | None
    exported_wh: int = Field(description="from the export register; final once settled")
    credit: int | None = Field(description="pence: exported Wh x price, rounded down; None until stopped")
    soc_pct: int | None = Field(description="the latest state of charge reported")
    lowest_soc_pct: int | None = Field(description="the lowest state of charge reported while exporting")
    settled: bool
    buyer: str = Field(description="who buys this booking's export: grid or home, fixed when it started")
    charger_refusals: RefusalsOut | None = Field(
        default=None,
        description="the session's charger refused its export permission or profile; asked again on a "
        "back-off; None while it has refused nothing since it last accepted",
    )
