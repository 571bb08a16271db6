"""A charger naming another charger's transaction (the `spoofed_charger` fault), for both engines:
the frames a spoofer sends, and whether the backend let them change the victim's session."""

from __future__ import annotations

import dataclasses

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from simulators.dialect import Dialect, Message
from simulators.evse import StopReason, Transaction, VirtualConnector

# Beyond the victim's register: no car draws a megawatt-hour in one session, so a session showing
# it was moved by the spoof and nothing else.
ABSURD_WH = 1_000_000
# A 2.0.1 spoof claims to be newer than anything the victim has sent, so a replay check cannot be
# what stops it.
SEQ_AHEAD = 1_000


def spoof_messages(
    dialect: Dialect, victim: VirtualConnector, tx: Transaction, ts: str
) -> tuple[int, list[Message]]:
    """A reading and a stop naming `tx`, which runs on `victim`, in the victim's own OCPP version
    (1.6 MeterValues and StopTransaction with its transactionId; 2.0.1 TransactionEvent Updated and
    Ended with its transactionId and no idToken). Returns the register they claim, and the frames."""
    forged = VirtualConnector(victim.no, victim.max_power_w)
    forged.meter.register_wh = victim.meter.register_wh + ABSURD_WH
    named = dataclasses.replace(tx, seq_no=tx.seq_no + SEQ_AHEAD)
    messages = [
        dialect.meter(forged, named, ts, victim.max_power_w),
        dialect.ended(forged, named, ts, StopReason.LOCAL),
    ]
    return forged.meter.register_wh, messages


def spoof_applied(app: App, cp_id: str, tx: Transaction, claimed_wh: int) -> bool:
    """Whether the victim's session (as the backend knows it) took the spoof's reading."""
    if isinstance(tx.wire_id, int):  # 1.6: the transactionId is our session id
        with app.store.reading() as uow:
            session = uow.sessions.get(tx.wire_id)
    else:
        try:
            session = app.charging.session_for_charger_tx(cp_id, tx.local_id)
        except NotFound:
            return False
    if session is None:
        return False
    return session.meter_last_wh >= claimed_wh or (session.meter_stop_wh or 0) >= claimed_wh
