"""OCPP timestamps: RFC 3339 in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from chargeshare.domain.instants import RANGE, in_range
from chargeshare.ocpp.connection import CallRejected


def parse_ts(value: str) -> datetime:
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise CallRejected("FormatViolation", f"not an RFC 3339 timestamp: {value!r}") from None
    if not in_range(ts):
        raise CallRejected("PropertyConstraintViolation", f"timestamp {value!r} is not {RANGE}")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
