"""Tax identifiers a seller gives at onboarding: a UK National Insurance number (NINO), a UK Unique
Taxpayer Reference (UTR), or another country's tax identification number (TIN) with its issuer.

Each `normalise_*` returns the identifier in one canonical spelling (upper case, no spaces) or raises
`InvalidField` naming the field and what is wrong. Only the form is checked: whether HMRC issued the
number to this person is for the operator's identity checks (KYC), not for a format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from chargeshare.domain.countries import UNITED_KINGDOM, is_country_code
from chargeshare.domain.errors import InvalidField

# HMRC's National Insurance Manual, NIM39110 ("What a NINO looks like"): two prefix letters, six
# digits and a suffix A, B, C or D. D, F, I, Q, U and V are never either prefix letter, O is never
# the second, and the prefixes BG, GB, KN, NK, NT, TN and ZZ are not to be used.
NINO_NEVER_IN_PREFIX = frozenset("DFIQUV")
NINO_NEVER_SECOND = frozenset("O")
NINO_UNUSED_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
# The same page lists reference numbers that look like NINOs but are administrative, not NINOs
# (OO is already refused by the rule above): they identify nobody to HMRC's tax records.
NINO_ADMINISTRATIVE_PREFIXES = frozenset({"CR", "FY", "MW", "NC"})
NINO_SUFFIXES = frozenset("ABCD")
_NINO_SHAPE = re.compile(r"[A-Z]{2}\d{6}[A-Z]")
UTR_DIGITS = 10
MAX_TIN = 200  # the OECD DPI schema's TIN is a string of at most 200 characters
_TIN_CHARACTERS = re.compile(r"[A-Z0-9./\-]+")
_SPACING = re.compile(r"[\s]+")


class TaxIdKind(StrEnum):
    NINO = "nino"  # a UK individual
    UTR = "utr"  # a UK individual in Self Assessment, or a UK company
    TIN = "tin"  # issued by another country, named alongside it


@dataclass(frozen=True)
class TaxIdentifier:
    kind: TaxIdKind
    value: str
    country: str  # ISO 3166-1 alpha-2 of the issuer: GB for a NINO or a UTR


def _compact(text: str) -> str:
    return _SPACING.sub("", text).upper()


def nino_problem(text: str) -> str | None:
    """Why `text` (spaces allowed, any case) is not a NINO, or None if its form is one."""
    nino = _compact(text)
    if not _NINO_SHAPE.fullmatch(nino):
        return "a National Insurance number is two letters, six digits and a letter, like QQ 12 34 56 C"
    first, second, prefix, suffix = nino[0], nino[1], nino[:2], nino[-1]
    if first in NINO_NEVER_IN_PREFIX or second in NINO_NEVER_IN_PREFIX:
        return f"{prefix} is not a National Insurance prefix: it never holds D, F, I, Q, U or V"
    if second in NINO_NEVER_SECOND:
        return f"{prefix} is not a National Insurance prefix: O is never its second letter"
    if prefix in NINO_UNUSED_PREFIXES:
        return f"{prefix} is not a National Insurance prefix: HMRC does not use it"
    if prefix in NINO_ADMINISTRATIVE_PREFIXES:
        return f"{prefix} marks an administrative reference, not a National Insurance number"
    if suffix not in NINO_SUFFIXES:
        return f"a National Insurance number ends in A, B, C or D, not {suffix}"
    return None


def normalise_nino(text: str, field: str = "nino") -> str:
    problem = nino_problem(text)
    if problem is not None:
        raise InvalidField(field, problem)
    return _compact(text)


def normalise_utr(text: str, field: str = "utr") -> str:
    """Ten digits; spaces allowed. HMRC prints a UTR with a trailing K on some letters: it is not
    part of the reference, so it is dropped."""
    utr = _compact(text).removesuffix("K")
    if not (utr.isascii() and utr.isdigit() and len(utr) == UTR_DIGITS):
        raise InvalidField(field, "a Unique Taxpayer Reference is 10 digits, like 12345 67890")
    return utr


def normalise_country(text: str, field: str) -> str:
    code = text.strip().upper()
    if not is_country_code(code):
        raise InvalidField(field, f"{text!r} is not an ISO 3166 two-letter country code (GB, FR, IE, ...)")
    return code


def normalise_tin(text: str, country: str, field: str = "tin") -> TaxIdentifier:
    """Another country's TIN, with the country that issued it. A UK identifier is a NINO or a UTR,
    whose forms are known, so GB is refused here."""
    issuer = normalise_country(country, f"{field}_country")
    if issuer == UNITED_KINGDOM:
        raise InvalidField(f"{field}_country", "a UK tax identifier is given as a NINO or a UTR")
    tin = _compact(text)
    if not tin or len(tin) > MAX_TIN or not _TIN_CHARACTERS.fullmatch(tin):
        raise InvalidField(field, f"a TIN is 1 to {MAX_TIN} letters and digits (with . / - allowed)")
    return TaxIdentifier(TaxIdKind.TIN, tin, issuer)


def tax_identifier(
    kind: TaxIdKind | str, value: str, country: str = UNITED_KINGDOM, field: str = "tax_id"
) -> TaxIdentifier:
    """One identifier of the kind named, normalised; `country` is read for a TIN only. Problems
    name `field` (and `field`_country for the TIN's issuer)."""
    kind = TaxIdKind(kind)
    if kind is TaxIdKind.NINO:
        return TaxIdentifier(kind, normalise_nino(value, field), UNITED_KINGDOM)
    if kind is TaxIdKind.UTR:
        return TaxIdentifier(kind, normalise_utr(value, field), UNITED_KINGDOM)
    return normalise_tin(value, country, field)


_COMPANY_NUMBER = re.compile(r"\d{8}|[A-Z]{2}\d{6}")


def normalise_company_number(text: str, field: str = "company_number") -> str:
    """A Companies House registration number: eight characters, all digits or two letters (SC, NI,
    OC, ...) and six digits. A shorter all-digit number is padded with zeros as Companies House does."""
    number = _compact(text)
    if number.isascii() and number.isdigit() and len(number) < 8:
        number = number.zfill(8)
    if not _COMPANY_NUMBER.fullmatch(number):
        raise InvalidField(field, "a company number is 8 digits, or 2 letters and 6 digits, like SC123456")
    return number
