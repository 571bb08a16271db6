"""Named failpoints: the process exits on the spot at a chosen step, for crash tests.

Inert unless switched on: `CHARGESHARE_FAILPOINT=stop-committed` (several: comma-separated), read
once when this module is imported, so only a process started with it set can die at one; or
`CHARGESHARE_FAILPOINT_FILE=PATH`, a file read at each failpoint, so that a simulation can arm one in
a running process (the file holding the names, as the variable does). A name fires at the first hit;
`name@N` fires at the process's Nth hit of it instead (`capture-called@2`: a session's top-up capture,
or the second of two captures), each earlier hit counted and passed. The file counts only the hits
made while it arms the name. The exit skips every cleanup (`os._exit`), as a kill -9 or a power cut
would.
"""

from __future__ import annotations

import os
import sys
from itertools import count

EXIT_CODE = 86

# Each a boundary where a crash must lose nothing: the money path's, and a report's implied decision.
POINTS = frozenset(
    {
        "booking-committed",  # the booking and its hold placement are recorded; the provider not yet asked
        "hold-authorized",  # the provider authorised the hold; the booking not yet confirmed
        "booking-confirmed",  # the booking is confirmed with its hold in the ledger; the driver not answered
        "cancel-committed",  # a cancellation and its release are committed; its charger not yet told
        "stop-committed",  # the session's stop and its capture step are committed; the charger not answered
        "stop-export-metered",  # a 2.1 stop's export reading is recorded; the stop (and its credit) not yet
        "capture-called",  # the provider captured; the ledger not yet written
        "release-called",  # the provider released a hold; the ledger not yet written
        "payout-committed",  # a payout (one payee's) is in the ledger; the operator not answered
        "invoice-issued",  # a fleet's monthly invoice and its ledger entry are committed; not answered
        "fleet-payment-recorded",  # a fleet's payment of an invoice is in the ledger; not answered
        "grid-payment-recorded",  # the grid buyer's payment of a month is in the ledger; not answered
        "wiring-committed",  # a charger's report raising its wiring is kept; the grid not yet asked to decide
    }
)


def armed(text: str) -> dict[str, int]:
    """`a, b@3` -> {"a": 1, "b": 3}: each name and the hit it fires at. ValueError if malformed."""
    hits: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, at, nth = part.partition("@")
        name = name.strip()
        if at and not (nth.strip().isdigit() and int(nth) >= 1):
            raise ValueError(f"failpoint {part!r}: the hit after '@' must be a whole number from 1")
        hits[name] = int(nth) if at else 1
    return hits


def _from_env(text: str) -> dict[str, int]:
    try:
        hits = armed(text)
    except ValueError as exc:
        raise SystemExit(f"CHARGESHARE_FAILPOINT: {exc}") from None
    if unknown := set(hits) - POINTS:
        raise SystemExit(f"CHARGESHARE_FAILPOINT names unknown failpoints: {', '.join(sorted(unknown))}")
    return hits


ARMED = _from_env(os.environ.get("CHARGESHARE_FAILPOINT", ""))
ARMED_FILE = os.environ.get("CHARGESHARE_FAILPOINT_FILE") or None
# The payments worker's threads may reach one failpoint together: `setdefault` and `next` on a
# count are each atomic, so no two hits share a number (and the charger core stays thread-free).
_hits: dict[str, count[int]] = {}


def _armed_in_file(path: str) -> dict[str, int]:
    try:
        with open(path) as f:
            return armed(f.read())
    except (OSError, ValueError):
        return {}


def failpoint(name: str) -> None:
    """Exit at once if `name` is armed and this is the hit it is armed at; nothing otherwise."""
    if name in ARMED or ARMED_FILE is not None:  # the whole cost when none is armed
        _hit(name)


def _hit(name: str) -> None:
    nth = ARMED.get(name)
    if nth is None and ARMED_FILE is not None:
        nth = _armed_in_file(ARMED_FILE).get(name)
    if nth is None:
        return
    if next(_hits.setdefault(name, count(1))) != nth:
        return
    spelled = name if nth == 1 else f"{name}@{nth}"  # as it was armed
    sys.stderr.write(f"failpoint {spelled}: exiting\n")
    sys.stderr.flush()
    os._exit(EXIT_CODE)
