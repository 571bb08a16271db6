"""The account a seller's earnings are paid to: a UK sort code and account number, or an IBAN.

Tax reports carry it as the seller's "financial account identifier" where the platform holds one.
Forms only: that the account exists and is the seller's is for the payment provider to find out.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from chargeshare.domain.countries import UNITED_KINGDOM, is_country_code
from chargeshare.domain.errors import InvalidField

SORT_CODE_DIGITS = 6
ACCOUNT_NUMBER_DIGITS = 8  # UK banks' standard; shorter numbers are given padded by the bank
IBAN_MIN, IBAN_MAX = 15, 34  # ISO 13616: the shortest (Norway) and longest an IBAN may be
GB_IBAN_LENGTH = 22
_SEPARATORS = re.compile(r"[\s\-]+")
_IBAN_BODY = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]+")


@dataclass(frozen=True)
class BankAccount:
    """Either a sort code and account number (UK), or an IBAN; never both."""

    sort_code: str = ""  # 12-34-56
    account_number: str = ""  # 8 digits
    iban: str = ""  # upper case, no spaces

    @property
    def identifier(self) -> str:
        """As a report prints it: the IBAN, or the sort code and account number."""
        return self.iban or f"{self.sort_code} {self.account_number}"

    @property
    def kind(self) -> str:
        return "IBAN" if self.iban else "UK sort code and account number"


def _digits(text: str) -> str:
    return _SEPARATORS.sub("", text)


def normalise_sort_code(text: str, field: str = "sort_code") -> str:
    digits = _digits(text)
    if not (digits.isascii() and digits.isdigit() and len(digits) == SORT_CODE_DIGITS):
        raise InvalidField(field, "a sort code is 6 digits, like 12-34-56")
    return f"{digits[:2]}-{digits[2:4]}-{digits[4:]}"


def normalise_account_number(text: str, field: str = "account_number") -> str:
    digits = _digits(text)
    if not (digits.isascii() and digits.isdigit() and len(digits) == ACCOUNT_NUMBER_DIGITS):
        raise InvalidField(field, "a UK account number is 8 digits")
    return digits


def iban_check(iban: str) -> int:
    """ISO 13616's check: the first four characters moved to the end, letters read as 10..35, the
    whole number mod 97. A well-formed IBAN gives 1."""
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(string.ascii_uppercase.index(c) + 10) if c.isalpha() else c for c in rearranged)
    return int(number) % 97


def normalise_iban(text: str, field: str = "iban") -> str:
    iban = _SEPARATORS.sub("", text).upper()
    if not (iban.isascii() and IBAN_MIN <= len(iban) <= IBAN_MAX and _IBAN_BODY.fullmatch(iban)):
        raise InvalidField(field, "an IBAN is a country code, 2 check digits and up to 30 letters and digits")
    if not is_country_code(iban[:2]):
        raise InvalidField(field, f"an IBAN starts with a country code; {iban[:2]} is none")
    if iban[:2] == UNITED_KINGDOM and len(iban) != GB_IBAN_LENGTH:
        raise InvalidField(field, f"a UK IBAN is {GB_IBAN_LENGTH} characters, not {len(iban)}")
    if iban_check(iban) != 1:
        raise InvalidField(field, "the IBAN's check digits do not match: a character is mistyped")
    return iban


def bank_account(sort_code: str = "", account_number: str = "", iban: str = "") -> BankAccount | None:
    """The account given, normalised; None when none is given (a seller may add one later)."""
    given_uk = bool(sort_code.strip() or account_number.strip())
    if given_uk and iban.strip():
        raise InvalidField("iban", "give a sort code and account number, or an IBAN, not both")
    if iban.strip():
        return BankAccount(iban=normalise_iban(iban))
    if not given_uk:
        return None
    if not sort_code.strip():
        raise InvalidField("sort_code", "an account number needs its sort code")
    if not account_number.strip():
        raise InvalidField("account_number", "a sort code needs its account number")
    return BankAccount(normalise_sort_code(sort_code), normalise_account_number(account_number))
