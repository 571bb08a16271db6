"""The heartbeat watchdog: silent chargers go OFFLINE, leave the map, their hosts are told; their next
frame, a Heartbeat included, brings them back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from chargeshare.adapters.memory_store import MemorySessions
from chargeshare.bootstrap import App
from chargeshare.domain.charger import ChargerStatus, ConnectorStatus
from chargeshare.domain.errors import DatabaseBusy
from chargeshare.domain.geo import BBox
from chargeshare.domain.search import SearchQuery
from chargeshare.ocpp import V16, V201, OcppVersion, csms_v16, csms_v201
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import ChargerOffline, ChargerOnline
from tests.conftest import T0, add_charger


def test_silent_charger_goes_offline_and_comes_back(app: App, clock: ManualClock) -> None:
    add_charger(app, "QUIET")
    add_charger(app, "CHATTY")
    seen: list[object] = []
    app.bus.subscribe(ChargerOffline, seen.append)
    app.bus.subscribe(ChargerOnline, seen.append)
    online = SearchQuery(bbox=BBox(-3, 51, -2, 52), online_only=True)
    interval = app.config.rules.heartbeat_interval_s
    for _ in range(3):
        clock.advance(interval)
        app.charging.heartbeat("CHATTY")
        assert app.charging.watchdog() == []  # exactly k intervals of silence is still tolerated
    clock.advance(1)
    assert app.charging.watchdog() == ["QUIET"]
    assert app.charging.watchdog() == []  # told once
    with app.store.transaction() as tx:
        assert tx.chargers.get("QUIET").status is ChargerStatus.OFFLINE
        (note,) = tx.notifications.all()
    assert note["kind"] == "charger_offline" and "QUIET" in str(note["body"])
    assert [c.charge_point_id for c in app.marketplace.search(online)] == ["CHATTY"]
    app.charging.heartbeat("QUIET")  # a heartbeat alone brings it back
    assert sorted(c.charge_point_id for c in app.marketplace.search(online)) == ["CHATTY", "QUIET"]
    app.charging.status("QUIET", 1, ConnectorStatus.AVAILABLE)
    assert [type(e).__name__ for e in seen] == ["ChargerOffline", "ChargerOnline"]


def test_any_frame_from_a_charger_marked_offline_brings_it_back(app: App, clock: ManualClock) -> None:
    """Marked offline while this process still remembers stamping it (another process's watchdog, or
    a stale link's close elsewhere): once told to forget its stamp, the next frame is written at once."""
    add_charger(app, "CP1")
    app.charging.heartbeat("CP1")
    with app.store.transaction() as tx:
        tx.chargers.set_status("CP1", ChargerStatus.OFFLINE, clock.now())  # as another process would
    app.last_seen.forget("CP1")
    app.charging.authorize("CP1", "no such tag")
    with app.store.reading() as tx:
        assert tx.chargers.get("CP1").status is ChargerStatus.ONLINE


def test_a_charger_heard_here_after_the_silent_list_was_read_stays_online(
    app: App, clock: ManualClock
) -> None:
    """A frame stamped in this process's memory after the watchdog wrote the stamps out, before it
    judged the charger: the stamp not yet written is the evidence, and is written instead."""
    add_charger(app, "LATE")
    app.charging.heartbeat("LATE")
    rules = app.config.rules
    clock.advance(rules.heartbeat_interval_s * rules.offline_after_intervals + 1)
    flush = app.last_seen.flush

    def flush_then_hear_it(most: int | None = None) -> int:
        written = flush(most)
        assert app.last_seen.record("LATE", clock.now())  # known here: renewed in memory only
        return written

    app.last_seen.flush = flush_then_hear_it  # type: ignore[method-assign]
    assert app.charging.watchdog() == []
    with app.store.reading() as tx:
        charger = tx.chargers.get("LATE")
        assert charger.status is ChargerStatus.ONLINE
        assert charger.last_seen_at == clock.now()
        assert tx.notifications.all() == []


def aligned_reading(at: datetime) -> dict[str, Any]:
    """A 1.6 clock-aligned reading of the main meter: connector 0, no transaction."""
    register = {"value": "1000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {"connectorId": 0, "meterValue": [{"timestamp": format_ts(at), "sampledValue": [register]}]}


def test_a_charger_talking_without_heartbeats_stays_online(app: App, clock: ManualClock) -> None:
    """A heartbeat interval is one of inactivity: a charger sending other frames may send no
    Heartbeat at all (1.6 HeartbeatInterval, 2.0.1 OCPPCommCtrlr.HeartbeatInterval). Here only its
    main meter's readings come, each interval: they are its signs of life."""
    add_charger(app, "CP1")
    v16 = csms_v16.handlers(app.charging, "CP1", app.reports)
    rules = app.config.rules
    for _ in range(2 * rules.offline_after_intervals):
        clock.advance(rules.heartbeat_interval_s)
        v16["MeterValues"](aligned_reading(clock.now()))
        assert app.charging.watchdog() == []
    with app.store.reading() as tx:
        assert tx.chargers.get("CP1").status is ChargerStatus.ONLINE


def frames(at: datetime) -> list[tuple[OcppVersion, str, dict[str, Any]]]:
    problem = {
        "eventId": 1,
        "timestamp": format_ts(at),
        "trigger": "Alerting",
        "actualValue": "true",
        "component": {"name": "ChargingStation"},
        "variable": {"name": "Problem"},
        "eventNotificationType": "HardWiredNotification",
    }
    main_meter = {"timestamp": format_ts(at), "sampledValue": [{"value": 1000.0}]}
    return [
        (V16, "MeterValues", aligned_reading(at)),
        (V16, "DataTransfer", {"vendorId": "acme"}),
        (V201, "MeterValues", {"evseId": 0, "meterValue": [main_meter]}),
        (V201, "NotifyEvent", {"generatedAt": format_ts(at), "seqNo": 0, "eventData": [problem]}),
    ]


@pytest.mark.parametrize("index", range(len(frames(T0))))
def test_a_frame_of_any_kind_brings_back_a_charger_marked_offline(
    app: App, clock: ManualClock, index: int
) -> None:
    """Marked offline elsewhere and forgotten here: whatever it says next is the sign it is back."""
    add_charger(app, "CP1")
    seen: list[object] = []
    app.bus.subscribe(ChargerOnline, seen.append)
    version, action, payload = frames(clock.now())[index]
    table = (csms_v16 if version == V16 else csms_v201).handlers(app.charging, "CP1", app.reports)
    with app.store.transaction() as tx:
        tx.chargers.set_status("CP1", ChargerStatus.OFFLINE, clock.now())  # as another process would
    app.last_seen.forget("CP1")
    clock.advance(1)
    table[action](payload)
    with app.store.reading() as tx:
        assert tx.chargers.get("CP1").status is ChargerStatus.ONLINE
        assert tx.chargers.get("CP1").last_seen_at == clock.now()
    assert len(seen) == 1  # announced once


def test_a_frame_whose_unit_of_work_fails_leaves_no_stamp_in_memory(
    app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reading from a charger marked offline brings it back in the reading's unit of work; the
    database fails that unit (a lock timeout, say), so it rolls back and the charger stays offline.
    It must not be remembered as stamped here: its next frame, a heartbeat, must write its stamp and
    bring it back, not be taken as known and only renewed in memory."""
    add_charger(app, "CP1")
    with app.store.transaction() as tx:
        tx.chargers.set_status("CP1", ChargerStatus.OFFLINE, clock.now())  # as another process would
    back: list[ChargerOnline] = []
    app.bus.subscribe(ChargerOnline, back.append)
    clock.advance(60)

    def busy(*_args: object, **_kwargs: object) -> None:
        raise DatabaseBusy("lock timeout", 1)

    with monkeypatch.context() as patched:
        patched.setattr(MemorySessions, "advance_meter", busy)
        with pytest.raises(DatabaseBusy):
            app.charging.meter("CP1", 1, 1_000)
    with app.store.reading() as tx:
        assert tx.chargers.get("CP1").status is ChargerStatus.OFFLINE  # rolled back with the reading
    clock.advance(1)
    app.charging.heartbeat("CP1")
    with app.store.reading() as tx:
        found = tx.chargers.get("CP1")
    assert (found.status, found.last_seen_at) == (ChargerStatus.ONLINE, clock.now())
    assert len(back) == 1
