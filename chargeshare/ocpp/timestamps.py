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


# Instants formatted lately and their text: a simulated fleet stamps the same few instants many
# times. Keyed by the UTC instant: values of one zone compare by wall time, fold ignored, so two
# instants an hour apart in a fold would share a key. Emptied when full, a bound not a policy.
_texts: dict[datetime, str] = {}
_TEXTS_HELD = 256


def format_ts(ts: datetime) -> str:
    text = _texts.get(ts) if ts.tzinfo is not None else None  # a naive one: local time, as given
    if text is None:
        utc = ts.astimezone(UTC)
        text = utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if ts.tzinfo is not None:
            if len(_texts) >= _TEXTS_HELD:
                _texts.clear()
            _texts[utc] = text
    return text
