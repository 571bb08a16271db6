"""HMRC digital platform reporting: which hosts ("sellers") are reported for a calendar year, and with
what figures.

The UK rules are The Platform Operators (Due Diligence and Reporting Requirements) Regulations 2023
(SI 2023/817), which apply the OECD Model Rules for Reporting by Platform Operators and their optional
module for the sale of goods. Per seller and quarter the report carries the consideration paid or
credited (net of the platform's fees: HMRC's manual, IEIM901740), the fees withheld, and the number
of relevant activities; with the seller's identity (see `seller_details`).

What a host sells, for these rules, is an operator's decision (`RelevantActivity`): by default the
rental of immovable property, a parking space with its charge point, for which there is no de
minimis. docs/architecture/hmrc-reporting.md gives the reasons.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.ledger import JournalEntry
from chargeshare.domain.money import Pence, format_gbp
from chargeshare.domain.seller_details import SellerDetails
from chargeshare.domain.statement import (
    FIRST_YEAR,
    LAST_YEAR,
    YearStatement,
    earnings_by_host,
    year_statement,
)


class RelevantActivity(StrEnum):
    # Section I(C)(9) of the model rules: "rental of immovable property, including ... parking spaces".
    # A home charge point is fixed to the host's property and the driver books its parking space.
    PROPERTY = "property"
    # The optional module: the sale of goods, were the electricity taken to be what is sold.
    GOODS = "goods"


# Section I(B)(4)(d), as HMRC's manual (IEIM901630) words it: a seller for whom the platform
# facilitated fewer than 30 sales of goods and whose consideration did not exceed EUR 2,000 is
# excluded. The UK's regulation 10 keeps the euro figure; GBP 1,700 is the sterling figure
# published guidance to sellers is quoted as using (HMRC's own page was not read): a setting.
DE_MINIMIS_ACTIVITIES = 30
DE_MINIMIS_CONSIDERATION: Pence = 170_000


@dataclass(frozen=True)
class ReportingRules:
    activity: RelevantActivity = RelevantActivity.PROPERTY
    de_minimis_activities: int = DE_MINIMIS_ACTIVITIES
    de_minimis_consideration: Pence = DE_MINIMIS_CONSIDERATION

    def __post_init__(self) -> None:
        if self.de_minimis_activities < 0 or self.de_minimis_consideration < 0:
            raise InvalidRequest("de minimis thresholds cannot be negative")


@dataclass(frozen=True)
class PlatformOperator:
    """Who files the report: its name, its UK tax identifier (None: not known to this testbed) and
    its registered office, as the XML's PlatformOperator and the sellers' copies name it."""

    name: str = "ChargeShare"
    tin: str | None = None
    address: str = "United Kingdom"
    country: str = "GB"


def check_year(year: int) -> int:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidRequest(f"year must be between {FIRST_YEAR} and {LAST_YEAR}")
    return year


def days_in(year: int) -> int:
    return (date(year + 1, 1, 1) - date(year, 1, 1)).days


def days_registered(year: int, registered_on: date | None) -> int:
    """Days of `year` the seller was registered with the platform (from the day they signed up);
    the whole year when we do not know when."""
    if registered_on is None or registered_on.year < year:
        return days_in(year)
    if registered_on.year > year:
        return 0
    return (date(year + 1, 1, 1) - registered_on).days


def excluded_by_de_minimis(
    activities: int,
    consideration: Pence,
    rules: ReportingRules,
    *,
    registered_days: int,
    year_days: int,
) -> bool:
    """The de minimis exclusion: only for a seller of goods, with fewer than the threshold of
    activities AND consideration not above the threshold. For a seller registered for part of the
    period both thresholds shrink in proportion (the UK's regulation 10: threshold x days registered
    / days in the period), compared here in whole numbers so no rounding decides a case."""
    if rules.activity is not RelevantActivity.GOODS:
        return False
    few = activities * year_days < rules.de_minimis_activities * registered_days
    small = consideration * year_days <= rules.de_minimis_consideration * registered_days
    return few and small


@dataclass(frozen=True)
class SellerReport:
    host_id: int
    host_name: str
    details: SellerDetails | None  # None: the host has not given them (the report is incomplete)
    figures: YearStatement
    excluded_because: str | None  # None: reportable

    @property
    def consideration(self) -> Pence:
        """What the rules call consideration: credited to the seller, net of the platform's fees."""
        return self.figures.net_paid

    @property
    def fees(self) -> Pence:
        return self.figures.fees_withheld

    @property
    def activities(self) -> int:
        return self.figures.activities

    @property
    def reportable(self) -> bool:
        return self.excluded_because is None


@dataclass(frozen=True)
class PlatformReport:
    year: int
    rules: ReportingRules
    sellers: tuple[SellerReport, ...]  # every seller active in the year, by host id

    @property
    def reportable(self) -> tuple[SellerReport, ...]:
        return tuple(s for s in self.sellers if s.reportable)

    @property
    def missing_details(self) -> tuple[SellerReport, ...]:
        """Reportable sellers the report cannot identify: due diligence is not finished for them."""
        return tuple(s for s in self.reportable if s.details is None)


def build_report(
    year: int,
    rules: ReportingRules,
    entries: Iterable[JournalEntry],
    *,
    host_names: Mapping[int, str],
    details: Mapping[int, SellerDetails],
    registered_on: Mapping[int, date],
) -> PlatformReport:
    """The year's report from the journal: every host credited anything in the year (an active
    seller), with their quarterly figures and whether the de minimis excludes them."""
    check_year(year)
    sellers = []
    for host_id, earned in sorted(earnings_by_host(entries).items()):
        figures = year_statement(host_id, year, earned)
        if figures.gross_consideration == 0 and figures.activities == 0:
            continue  # not active in this year
        excluded = excluded_by_de_minimis(
            figures.activities,
            figures.net_paid,
            rules,
            registered_days=days_registered(year, registered_on.get(host_id)),
            year_days=days_in(year),
        )
        sellers.append(
            SellerReport(
                host_id,
                host_name=host_names.get(host_id, ""),
                details=details.get(host_id),
                figures=figures,
                excluded_because=_de_minimis_reason(rules) if excluded else None,
            )
        )
    return PlatformReport(year, rules, tuple(sellers))


def _de_minimis_reason(rules: ReportingRules) -> str:
    return (
        f"de minimis: fewer than {rules.de_minimis_activities} sales of goods and at most "
        f"{format_gbp(rules.de_minimis_consideration)} (in proportion for part of the year)"
    )


def whole_pounds(pence: Pence) -> int:
    """The DPI XML schema's amounts are in full units: pence rounded to the nearest pound, halves
    away from zero."""
    pounds, rest = divmod(abs(pence), 100)
    rounded = pounds + (1 if rest >= 50 else 0)
    return -rounded if pence < 0 else rounded
