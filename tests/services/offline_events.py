"""A 2.0.1 charger's queued transaction events, as the backend's handlers receive them when it replays
its offline queue: one transaction, stamped when each event happened, flagged offline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chargeshare.ocpp.connection import Handler
from chargeshare.ocpp.timestamps import format_ts


def offline_event(
    table: dict[str, Handler], kind: str, seq: int, at: datetime, wh: int, **more: Any
) -> dict[str, Any]:
    """Hand TransactionEvent `kind` of transaction "offline-1" to the backend; returns its answer."""
    return table["TransactionEvent"](
        {
            "eventType": kind,
            "timestamp": format_ts(at),
            "triggerReason": "Authorized" if kind == "Started" else "EVCommunicationLost",
            "seqNo": seq,
            "offline": True,
            "transactionInfo": {"transactionId": "offline-1"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": format_ts(at), "sampledValue": [{"value": wh}]}],
            **more,
        }
    )
