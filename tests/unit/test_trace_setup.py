"""A trace's setup records (version 2): the feeders, sites, flexibility events and operator accounts
a run makes outside the API round-trip through the recorder and a replay on the in-memory store; a
replay judges `grid_within_limits` from the chargers' own readings against them, compares the
limits the recorded backend sent with its own, refuses setup the fresh backend refuses, and still
replays a version 1 trace, saying what it cannot check."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.accounts import Role
from chargeshare.domain.grid_limits import Scope
from chargeshare.services.clock import ManualClock
from simulators.replay import Replayer, ReplayReport, replay
from simulators.replay_grid import LoadCurves
from simulators.trace import FORMAT, FORMAT_VERSION, TraceError, TraceRecorder, read_trace
from tests.conftest import add_charger

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
PASSWORD = "correct-horse-battery-9"


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def run(path: Path) -> ReplayReport:
    return asyncio.run(replay(read_trace(path), database_url="memory://"))


# ---- recording and re-creating ------------------------------------------------------------------


def test_the_grid_and_an_operator_round_trip_through_a_trace(
    app: App, clock: ManualClock, tmp_path: Path
) -> None:
    charger_id = add_charger(app, "CP1", online=False)
    account = app.auth.register_host("h@hosts.example", PASSWORD, "Hana")
    assert account.host is not None
    feeder = app.grid.add_feeder("F1", 20_000)
    app.grid.add_feeder("F2", 9_000)  # on no site: kept all the same
    site = app.grid.add_site(account.host, "home", 13_800, house_load_w=1_200, feeder_id=feeder.feeder_id)
    app.grid.place(charger_id, site.site_id)
    event = app.grid.add_flex_event(
        Scope.FEEDER, feeder.feeder_id, 9_000, T0 + timedelta(minutes=40), T0 + timedelta(minutes=70)
    )
    path = tmp_path / "run.jsonl"
    recorder = TraceRecorder.open(path, app, {})
    recorder.snapshot_fleet({account.host: ("h@hosts.example", PASSWORD)})
    clock.advance(60)
    later = app.grid.add_flex_event(
        Scope.SITE, site.site_id, 2_000, T0 + timedelta(minutes=80), T0 + timedelta(minutes=90)
    )
    recorder.flex_event(later)
    recorder.operator("ops@operators.example", PASSWORD)
    recorder.close()

    trace = read_trace(path)
    assert trace.version == FORMAT_VERSION == 2 and trace.records_setup and trace.has_grid
    kinds = [r.kind for r in trace.records]
    assert kinds.index("feeder") > kinds.index("charger")  # a site's chargers are registered first
    assert kinds.count("feeder") == 2 and kinds.count("flex_event") == 2 and kinds[-1] == "operator"

    replayer = Replayer(trace, database_url="memory://")
    again = replayer.app
    close, again.close = again.close, lambda: None  # type: ignore[method-assign]
    try:
        report = asyncio.run(replayer.run())
        assert report.ok, (report.run.invariants, report.run.errors)
        assert report.notes == [] and report.divergence_count == 0
        feeders = {f.name: f for f in again.grid.feeders()}
        assert {n: f.limit_w for n, f in feeders.items()} == {"F1": 20_000, "F2": 9_000}
        (home,) = again.grid.sites()
        assert (home.name, home.limit_w, home.house_load_w) == ("home", 13_800, 1_200)
        assert home.feeder_id == feeders["F1"].feeder_id
        with again.store.reading() as tx:
            cp1 = tx.chargers.get("CP1")
            owner = tx.accounts.by_email("h@hosts.example")
        assert again.grid.members() == {cp1.charger_id: home.site_id}
        assert owner is not None and owner.host == home.host_id
        events = sorted(again.grid.flex_events(), key=lambda e: e.starts_at)
        assert [(e.scope, e.target_id, e.limit_w, e.starts_at, e.ends_at) for e in events] == [
            (Scope.FEEDER, feeders["F1"].feeder_id, 9_000, event.starts_at, event.ends_at),
            (Scope.SITE, home.site_id, 2_000, later.starts_at, later.ends_at),
        ]
        assert again.auth.login("ops@operators.example", PASSWORD).principal.role is Role.ADMIN
    finally:
        close()


# ---- judging the grid ---------------------------------------------------------------------------


def ocpp(t: float, direction: str, frame: list[Any], cp: str = "CP1", version: str = "1.6") -> dict[str, Any]:
    return {
        "t": at(t),
        "kind": "ocpp",
        "cp": cp,
        "dir": direction,
        "version": version,
        "frame": json.dumps(frame),
    }


def grid_run(
    *, feeder_w: int = 6_000, sent_w: int = 5_000, version: int = FORMAT_VERSION, sent_a: int | None = None
) -> list[dict[str, Any]]:
    """One 7.4 kW charger on a site of its own under feeder F1, its car drawing 4,200 W for ten
    minutes (70 Wh a minute), and the limit the recorded backend sent it."""
    charger = {
        "t": at(0),
        "kind": "charger",
        "id": 1,
        "cp": "CP1",
        "host": 1,
        "lat": 51.45,
        "lon": -2.59,
        "price_per_kwh": 30,
        "connectors": [{"no": 1, "type": "type2", "max_power_w": 7_400}],
    }
    profile = {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 190_001,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": sent_w}],
            }
            if sent_a is None
            else {  # to a charger taking A only
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": sent_a, "numberPhases": 1}],
            },
        },
    }
    start = {"connectorId": 1, "idTag": "TAG1", "meterStart": 1_000, "timestamp": at(120)}
    lines: list[dict[str, Any]] = [
        {"kind": "header", "format": FORMAT, "version": version, "start": at(0)},
        {"t": at(0), "kind": "host", "id": 1, "name": "Hana"},
        charger,
        {"t": at(0), "kind": "feeder", "id": 1, "name": "F1", "limit_w": feeder_w},
        {
            "t": at(0),
            "kind": "site",
            "id": 1,
            "host": 1,
            "name": "home",
            "limit_w": 13_800,
            "house_load_w": 1_000,
            "feeder": 1,
            "chargers": [1],
        },
        ocpp(1, "in", [2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]),
        ocpp(
            2,
            "in",
            [2, "2", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}],
        ),
        ocpp(120, "in", [2, "3", "StartTransaction", start]),
        ocpp(120, "out", [3, "3", {"transactionId": 7, "idTagInfo": {"status": "Accepted"}}]),
        ocpp(121, "out", [2, "cs-1", "SetChargingProfile", profile]),
        ocpp(121, "in", [3, "cs-1", {"status": "Accepted"}]),
    ]
    for minute in range(1, 11):
        reading = {"timestamp": at(120 + 60 * minute), "sampledValue": [{"value": str(1_000 + 70 * minute)}]}
        lines.append(
            ocpp(
                120 + 60 * minute,
                "in",
                [
                    2,
                    f"m{minute}",
                    "MeterValues",
                    {"connectorId": 1, "transactionId": 7, "meterValue": [reading]},
                ],
            )
        )
    stop = {"transactionId": 7, "meterStop": 1_700, "timestamp": at(720)}
    lines.append(ocpp(721, "in", [2, "4", "StopTransaction", stop]))
    return lines


def grid_check(report: ReplayReport) -> Any:
    return next(r for r in report.run.invariants if r.name == "grid_within_limits")


def test_a_recorded_grid_is_judged_from_the_chargers_readings(tmp_path: Path) -> None:
    report = run(write(tmp_path / "grid.jsonl", grid_run()))
    assert report.ok, (report.run.invariants, report.run.errors)
    assert grid_check(report).ok and report.divergence_count == 0, report.divergences
    grid = report.run.summary["grid"]
    assert (grid["feeders"], grid["sites"]) == (1, 1)
    # 70 Wh a minute, credited one Wh less (a whole-Wh register): 4,140 W, and the house's 1,000 W.
    assert grid["feeder_peak_w"] == 5_140 and grid["over_limit_samples"] == 0


def test_a_feeder_limit_lowered_in_the_trace_fails_the_grid_check(tmp_path: Path) -> None:
    report = run(write(tmp_path / "lowered.jsonl", grid_run(feeder_w=4_000)))
    assert not report.ok
    assert [r.name for r in report.run.invariants if not r.ok] == ["grid_within_limits"]
    assert "over its 4000 W limit" in grid_check(report).failures[0]
    # What the recorded backend sent (5,000 W) is not what this setup decides (3,000 W).
    assert any("limited it to 5000 W from" in d for d in report.divergences)


def test_a_limit_the_recorded_setup_cannot_explain_is_a_divergence(tmp_path: Path) -> None:
    # Sent 2,500 W, as under a flexibility event the trace no longer has: the loads are within the
    # limits it does have, so the invariant holds, but the limits differ from the recording.
    report = run(write(tmp_path / "dropped.jsonl", grid_run(sent_w=2_500)))
    assert report.ok and grid_check(report).ok
    assert report.divergence_count == 1
    assert report.divergences[0].startswith("CP1 connector 1: the recorded backend limited it to 2500 W")


def test_a_limit_sent_in_amps_is_compared_as_the_amps_decided_for_its_watts(tmp_path: Path) -> None:
    # 5,000 W is 21 A on one phase: what the recorded backend sent a charger taking A only.
    report = run(write(tmp_path / "amps.jsonl", grid_run(sent_a=21)))
    assert report.ok and report.divergence_count == 0, report.divergences
    other = run(write(tmp_path / "other.jsonl", grid_run(sent_a=10)))
    assert other.divergences[0].startswith("CP1 connector 1: the recorded backend limited it to 10 A")
    assert "where this replay decided 6 A, 21 A;" in other.divergences[0]  # idle, then charging


def call(
    t: float, method: str, path: str, body: Any, status: int, response: Any, token: str = ""
) -> dict[str, Any]:
    record = {"t": at(t), "kind": "http", "method": method, "path": path, "body": body}
    record |= {"status": status, "response": response, **({"auth": f"Bearer {token}"} if token else {})}
    return record


def grid_through_the_api(feeder_w: int) -> list[dict[str, Any]]:
    """The same run, its grid made by the operator's and the host's apps over the API (recorded ids
    40 and 50, which the replay maps to its own)."""
    header, charger, *frames = [x for x in grid_run() if x["kind"] not in ("feeder", "site", "host")]
    login = {"email": "ops@operators.example", "password": PASSWORD}
    host = {"email": "h@hosts.example", "password": PASSWORD}
    site = {"host_id": 1, "name": "home", "limit_w": 13_800, "house_load_w": 1_000, "feeder_id": 40}
    driver = {"email": "d@drivers.example", "password": PASSWORD, "name": "Dee", "id_tag": "TAG1"}
    booking = {"charger_id": 1, "connector_no": 1, "minutes": 60, "max_energy_wh": 10_000}
    return [
        header,
        {"t": at(0), "kind": "host", "id": 1, "name": "Hana", **host},
        charger,
        {"t": at(0), "kind": "operator", **login},
        call(0, "POST", "/auth/login", login, 200, {"access_token": "op"}),
        call(0, "POST", "/auth/login", host, 200, {"access_token": "host"}),
        call(0, "POST", "/admin/feeders", {"name": "F1", "limit_w": feeder_w}, 201, {"feeder_id": 40}, "op"),
        call(0, "POST", "/admin/sites", site, 201, {"site_id": 50}, "op"),
        call(0, "PUT", "/host/chargers/1/site", {"site_id": 50}, 204, None, "host"),
        *frames[:2],  # the charger boots: it can be booked
        call(30, "POST", "/auth/register/driver", driver, 201, {"access_token": "dee", "driver_id": 7}),
        call(60, "POST", "/bookings", booking, 201, {"id": 9}, "dee"),
        *frames[2:],
    ]


@pytest.mark.parametrize(("feeder_w", "holds"), [(6_000, True), (4_000, False)])
def test_a_grid_made_through_the_api_is_judged_too(tmp_path: Path, feeder_w: int, holds: bool) -> None:
    report = run(write(tmp_path / "api-grid.jsonl", grid_through_the_api(feeder_w)))
    assert report.run.errors == []
    assert grid_check(report).ok is holds
    grid = report.run.summary["grid"]
    assert (grid["feeders"], grid["sites"]) == (1, 1) and grid["samples"] > 0
    assert (report.divergence_count == 0) is holds, report.divergences


# ---- older traces and conflicts -----------------------------------------------------------------


def test_a_version_1_trace_replays_as_before_and_says_what_it_cannot_check(tmp_path: Path) -> None:
    lines = [x for x in grid_run(version=1) if x.get("kind") not in ("feeder", "site")]
    fleets = {
        "t": at(600),
        "kind": "http",
        "method": "POST",
        "path": "/fleets",
        "body": {"name": "Hub Fleet", "id_tag": "HUB", "email": "f@fleets.example", "password": PASSWORD},
        "status": 201,
        "response": {"id": 1},
        "auth": "Bearer op-token",
    }
    report = run(write(tmp_path / "v1.jsonl", [*lines, fleets]))
    assert "grid_within_limits" not in {r.name for r in report.run.invariants}
    assert len(report.notes) == 2
    assert "grid_within_limits is not checked" in report.notes[0]
    assert "no operator accounts" in report.notes[1]
    assert "line 21: POST /fleets answered 401, recorded 201" in report.divergences
    assert json.loads(report.to_json())["notes"] == report.notes


def setup_line(kind: str, **data: Any) -> dict[str, Any]:
    return {"t": at(0), "kind": kind, **data}


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (
            [
                setup_line(
                    "site", id=2, host=9, name="x", limit_w=13_800, house_load_w=0, feeder=1, chargers=[]
                )
            ],
            "site 2 is on host 9, which the trace never made",
        ),
        (
            [
                setup_line(
                    "site", id=2, host=1, name="x", limit_w=13_800, house_load_w=0, feeder=7, chargers=[]
                )
            ],
            "site 2 is on feeder 7, which the trace never made",
        ),
        (
            [
                setup_line(
                    "site", id=2, host=1, name="x", limit_w=13_800, house_load_w=0, feeder=1, chargers=[5]
                )
            ],
            "site 2 holds charger 5, never registered in the trace",
        ),
        ([setup_line("feeder", id=2, name="F2", limit_w=900)], "the recorded feeder is refused here"),
        (
            [
                setup_line(
                    "flex_event", id=1, scope="site", target=4, limit_w=0, starts_at=at(60), ends_at=at(120)
                )
            ],
            "flexibility event 1 is on site 4, which the trace never made",
        ),
        (
            [setup_line("operator", email="ops@x.example", password=PASSWORD)] * 2,
            "operator ops@x.example has an account here already",
        ),
    ],
    ids=[
        "unknown-host",
        "unknown-feeder",
        "unknown-charger",
        "limit-under-minimum",
        "unknown-target",
        "operator-twice",
    ],
)
def test_setup_the_fresh_backend_cannot_recreate_fails_the_replay(
    tmp_path: Path, extra: list[dict[str, Any]], error: str
) -> None:
    lines = grid_run()
    report = run(write(tmp_path / "conflict.jsonl", [*lines[:5], *extra, *lines[5:]]))
    assert not report.ok
    assert any(error in e for e in report.run.errors), report.run.errors


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"kind": "feeder", "id": 1, "name": "F1", "limit_w": "lots"}, "limit_w"),
        ({"kind": "site", "id": 1, "host": 1, "name": "s", "limit_w": 1, "house_load_w": -1}, "house_load_w"),
        (
            {
                "kind": "site",
                "id": 1,
                "host": 1,
                "name": "s",
                "limit_w": 1,
                "house_load_w": 0,
                "chargers": "1",
            },
            "chargers",
        ),
        ({"kind": "flex_event", "id": 1, "scope": "town", "target": 1, "limit_w": 0}, "scope"),
        (
            {
                "kind": "flex_event",
                "id": 1,
                "scope": "feeder",
                "target": 1,
                "limit_w": 0,
                "starts_at": at(60),
                "ends_at": at(0),
            },
            "ends_at",
        ),
        ({"kind": "operator", "email": "ops@x.example"}, "password"),
    ],
)
def test_a_malformed_setup_record_names_its_line_and_field(
    tmp_path: Path, line: dict[str, Any], field: str
) -> None:
    path = write(
        tmp_path / "bad.jsonl", [{"kind": "header", "format": FORMAT, "version": 2}, {"t": at(0), **line}]
    )
    with pytest.raises(TraceError, match=rf":2: field '{field}"):
        read_trace(path)


def test_an_unknown_format_version_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "v3.jsonl", [{"kind": "header", "format": FORMAT, "version": 3}])
    with pytest.raises(TraceError, match="reads version 1 or 2, got 3"):
        read_trace(path)


def test_load_curves_read_201_transaction_events_and_a_car_held_at_zero(tmp_path: Path) -> None:
    def event(t: float, kind: str, wh: int, state: str, seq: int) -> dict[str, Any]:
        payload = {
            "eventType": kind,
            "timestamp": at(t),
            "triggerReason": "MeterValuePeriodic",
            "seqNo": seq,
            "transactionInfo": {"transactionId": "tx-1", "chargingState": state},
            "evse": {"id": 2, "connectorId": 1},
            "meterValue": [{"timestamp": at(t), "sampledValue": [{"value": wh}]}],
        }
        return ocpp(t, "in", [2, f"e{seq}", "TransactionEvent", payload], version="2.0.1")

    lines = [
        {"kind": "header", "format": FORMAT, "version": 2},
        event(0, "Started", 500, "Charging", 0),
        event(60, "Updated", 601, "Charging", 1),  # 101 Wh: credited 100 Wh over a minute
        event(120, "Updated", 601, "SuspendedEVSE", 2),
        event(180, "Ended", 601, "EVConnected", 3),
    ]
    curves = LoadCurves.scan(read_trace(write(tmp_path / "201.jsonl", lines)), lambda r: None)
    when = T0.__add__
    assert curves.power_w(("CP1", 2), when(timedelta(seconds=30))) == 6_000
    assert curves.power_w(("CP1", 2), when(timedelta(seconds=90))) == 0
    assert curves.power_w(("CP1", 2), when(timedelta(seconds=200))) == 0
    assert curves.held_at(("CP1", 2), when(timedelta(seconds=150)))
    assert not curves.held_at(("CP1", 2), when(timedelta(seconds=30)))
    assert not curves.held_at(("CP1", 2), when(timedelta(seconds=190)))
    assert curves.meter_interval_s == 60
