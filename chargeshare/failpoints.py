"""Named failpoints: the process exits on the spot at a chosen step, for crash tests.

Inert unless switched on: `CHARGESHARE_FAILPOINT=stop-committed` (several: comma-separated), read
once when this module is imported, so only a process started with it set can die at one; or
`CHARGESHARE_FAILPOINT_FILE=PATH`, a file read at each failpoint, so that a simulation can arm one in
a running process (the file holding the names, as the variable does). The exit skips every cleanup
(`os._exit`), as a kill -9 or a power cut would.
"""

from __future__ import annotations

import os
import sys

EXIT_CODE = 86

# Each a boundary of the money path where a crash must lose nothing.
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
        "payout-committed",  # a payout is in the ledger; the operator not answered
        "invoice-issued",  # a fleet's monthly invoice and its ledger entry are committed; not answered
        "fleet-payment-recorded",  # a fleet's payment of an invoice is in the ledger; not answered
        "grid-payment-recorded",  # the grid buyer's payment of a month is in the ledger; not answered
    }
)


def names(text: str) -> frozenset[str]:
    return frozenset(p.strip() for p in text.split(",") if p.strip())


ARMED = names(os.environ.get("CHARGESHARE_FAILPOINT", ""))
if ARMED - POINTS:
    raise SystemExit(f"CHARGESHARE_FAILPOINT names unknown failpoints: {', '.join(sorted(ARMED - POINTS))}")
ARMED_FILE = os.environ.get("CHARGESHARE_FAILPOINT_FILE") or None


def _armed_in_file(path: str) -> frozenset[str]:
    try:
        with open(path) as f:
            return names(f.read())
    except OSError:
        return frozenset()


def failpoint(name: str) -> None:
    """Exit at once if `name` is armed; nothing otherwise."""
    if name in ARMED or (ARMED_FILE is not None and name in _armed_in_file(ARMED_FILE)):
        sys.stderr.write(f"failpoint {name}: exiting\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
