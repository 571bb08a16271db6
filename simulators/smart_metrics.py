"""The run summary's `smart_charging` measures: what the virtual chargers did at each relevant time
under the Smart Charge Points Regulations, judged against the backend's own record of who overrode
and which chargers provide DSR (the store, not the chargers' say).

Delays are the chargers' draws (seconds, to the second); held time is how long a change actually
waited (a delay cut short by an override counts what it served). Energy in peak hours is what went
into cars during weekday peak windows, split at the windows' edges by the chargers' power model,
apart from the firmware's decisions (so a charger that breaks the rules is still measured).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from chargeshare.bootstrap import App
from chargeshare.domain.smart_charge_points import SmartSettings, Suppressed
from chargeshare.services.ports import UnitOfWork
from simulators.smart_gate import Change, SmartGate

NAMES = (
    "starts",  # transactions run under the regulations
    "relevant_times",  # starts, rises and falls of the limit, each met by the delay or its suppression
    "delays_drawn",
    "delay_min_s",
    "delay_max_s",
    "delay_mean_s",
    "delay_minutes_covered",  # distinct whole minutes among the start delays drawn: their spread
    "suppressed_end_user",  # the driver's override (from the start, or cutting a delay short)
    "suppressed_owner",
    "suppressed_dsr",
    "override_held_max_s",  # longest any overriding driver's change waited (the override's journey)
    "dsr_held_max_s",  # longest any change waited on a charger providing DSR
    "peak_wh_default_hours",  # energy in peak hours under the default charging hours: must be 0
    "peak_wh_overridden",  # energy in peak hours of drivers who overrode them
    "peak_wh_hours_removed",  # energy in peak hours on chargers whose host removed them
)


def smart_charging_summary(app: App, gates: Sequence[SmartGate]) -> dict[str, int]:
    """Every name in NAMES, 0 where nothing happened."""
    with app.store.reading() as tx:
        truth = [_truth(tx, g) for g in gates]
    records = [r for g in gates for r in g.log]
    drawn = [r.drawn_s for r in records if r.change is Change.START and r.drawn_s is not None]
    why = [r.suppressed or r.cut_short_by for r in records]
    out = dict.fromkeys(NAMES, 0)
    out |= {
        "starts": len(gates),
        "relevant_times": len(records),
        "delays_drawn": sum(1 for r in records if r.drawn_s is not None),
        "delay_min_s": min(drawn, default=0),
        "delay_max_s": max(drawn, default=0),
        "delay_mean_s": round(sum(drawn) / len(drawn)) if drawn else 0,
        "delay_minutes_covered": len({d // 60 for d in drawn}),
        "suppressed_end_user": why.count(Suppressed.END_USER),
        "suppressed_owner": why.count(Suppressed.OWNER),
        "suppressed_dsr": why.count(Suppressed.DSR),
    }
    for gate, (overridden, settings) in zip(gates, truth, strict=True):
        held = math.ceil(max((r.held_s for r in gate.log), default=0.0))
        if overridden:
            out["override_held_max_s"] = max(out["override_held_max_s"], held)
            out["peak_wh_overridden"] += gate.peak_wh
        elif not settings.default_charging_hours:
            out["peak_wh_hours_removed"] += gate.peak_wh
        else:
            out["peak_wh_default_hours"] += gate.peak_wh
        if settings.demand_side_response:
            out["dsr_held_max_s"] = max(out["dsr_held_max_s"], held)
    return out


def _truth(tx: UnitOfWork, gate: SmartGate) -> tuple[bool, SmartSettings]:
    """(the booking's driver overrode, the charger's settings) as the backend recorded them."""
    charger = tx.chargers.get(gate.charge_point_id)
    settings = tx.smart.settings(charger.charger_id) or SmartSettings()
    if isinstance(gate.wire_id, int):  # 1.6: our session id
        session = tx.sessions.get(gate.wire_id)
    else:  # 2.0.1: the charger's own transaction id
        session = tx.sessions.by_charger_transaction(charger.charger_id, gate.transaction)
    overridden = session is not None and bool(tx.smart.overridden([session.booking_id]))
    return overridden, settings
