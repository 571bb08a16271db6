"""Money in integer pence (GBP), energy in integer watt-hours. No floats touch either."""

from __future__ import annotations

from dataclasses import dataclass

from chargeshare.domain.errors import InvalidRequest

Pence = int
Wh = int

BPS_DENOMINATOR = 10_000


def format_gbp(pence: Pence) -> str:
    """Render pence as pounds for people: 1234 -> '£12.34', -5 -> '-£0.05'."""
    sign = "-" if pence < 0 else ""
    pounds, rest = divmod(abs(pence), 100)
    return f"{sign}£{pounds:,}.{rest:02d}"


def format_kwh(wh: Wh) -> str:
    kwh, rest = divmod(wh, 1000)
    return f"{kwh:,}.{rest // 10:02d} kWh"


@dataclass(frozen=True)
class FeeSplit:
    """How one captured amount divides between the host and the platform."""

    host_share: Pence
    platform_fee: Pence  # VAT-inclusive
    vat: Pence = 0  # the VAT inside the platform fee

    @property
    def total(self) -> Pence:
        return self.host_share + self.platform_fee

    @property
    def platform_revenue(self) -> Pence:
        return self.platform_fee - self.vat


def split_fee(cost: Pence, platform_fee_bps: int, vat_bps: int = 0) -> FeeSplit:
    """Platform fee is `bps` of cost rounded down; the host gets the rest, so the parts always sum.

    VAT is charged on the platform's fee only (a private host is not VAT-registered): the fee is
    VAT-inclusive and its VAT fraction, rounded down, is owed to HMRC."""
    if cost < 0:
        raise InvalidRequest("cost cannot be negative")
    if not 0 <= platform_fee_bps <= BPS_DENOMINATOR:
        raise InvalidRequest("platform fee must be between 0 and 10000 basis points")
    if not 0 <= vat_bps <= BPS_DENOMINATOR:
        raise InvalidRequest("VAT must be between 0 and 10000 basis points")
    fee = cost * platform_fee_bps // BPS_DENOMINATOR
    vat = fee * vat_bps // (BPS_DENOMINATOR + vat_bps)
    return FeeSplit(host_share=cost - fee, platform_fee=fee, vat=vat)
