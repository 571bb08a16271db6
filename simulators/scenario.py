"""Scenario files: a fleet, drivers, a fault timeline and expectations, in YAML.

Loading is strict: a bad file is refused with its path, line and field, and nothing runs.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.v2g import MAX_EXPORT_PRICE, MIN_SOC_FLOOR
from chargeshare.failpoints import POINTS as FAILPOINTS
from chargeshare.ocpp import V16, V21, OcppVersion
from chargeshare.services.rules import MarketplaceRules
from simulators.backend_nodes import MAX_PROCESSES
from simulators.dialect import PROTOCOLS
from simulators.driver import DRIVER_OUTCOMES, NO_CHARGER_REASONS
from simulators.faults import ACTIONS, LASTING, Fault, not_in_des
from simulators.fleet import CITIES, DriverBehaviour, FleetShape, FlexShape, GridShape
from simulators.fleet_hub import SUMMARY_NAMES as HUB_NAMES
from simulators.fleet_hub import HubShape
from simulators.grid_metrics import NAMES as GRID_NAMES
from simulators.live import DEFAULT_START, LiveParams, problems
from simulators.pricing_metrics import NAMES as PRICING_NAMES
from simulators.smart_metrics import NAMES as SMART_NAMES
from simulators.v2g import SUMMARY_NAMES as V2G_NAMES
from simulators.v2g import V2gShape

SUFFIXES = (".yaml", ".yml")
# A provider slower than this is an outage: a payment step's lease and a booking's hold placement
# lapse first (simulated seconds).
PROVIDER_SLOW_MAX_S = min(MarketplaceRules().payment_lease_s, MarketplaceRules().hold_placement_timeout_s)

# The versions YAML reads as numbers when unquoted (1.6, 2.1); "2.0.1" is only ever a string.
UNQUOTED: list[Any] = [float(v) for v in PROTOCOLS if v.count(".") == 1]
_range = {
    "type": "object",
    "additionalProperties": False,
    "required": ["min", "max"],
    "properties": {"min": {"type": "integer", "minimum": 0}, "max": {"type": "integer", "minimum": 0}},
}
_rate = {"type": "number", "minimum": 0, "maximum": 1}
_comparison = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "equals": {"type": "integer"},
        "at_least": {"type": "integer"},
        "at_most": {"type": "integer"},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "ChargeShare scenario",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "fleet", "drivers"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"},
        "description": {"type": "string"},
        "seed": {"type": "integer"},
        "duration_minutes": {"type": "integer", "minimum": 1, "maximum": 7 * 24 * 60},
        "speed": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        "city": {"enum": sorted(CITIES)},
        # When the run's window begins: ISO 8601 with its UTC offset, e.g. 2026-03-04T21:40:00Z (the
        # smart charging regulations' peak hours are weekday local times).
        "start": {"type": "string"},
        # live: real WebSockets and HTTP on a scaled clock; des: SimPy virtual time (large fleets).
        "engine": {"enum": ["live", "des"]},
        # The backend as `chargeshare serve` processes (several behind HAProxy) instead of in process.
        "backend": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"processes": {"type": "integer", "minimum": 1, "maximum": MAX_PROCESSES}},
        },
        "fleet": {
            "type": "object",
            "additionalProperties": False,
            "required": ["chargers"],
            "properties": {
                "chargers": {"type": "integer", "minimum": 1, "maximum": 2000},
                "radius_m": {"type": "number", "exclusiveMinimum": 0, "maximum": 100_000},
                "powers_w": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1_000}},
                "price_per_kwh": _range,
                # Dealt out in turn (charger i gets protocols[i % n]); YAML reads an unquoted 1.6 or 2.1
                # as a number.
                "protocols": {"type": "array", "items": {"enum": UNQUOTED + list(PROTOCOLS)}, "minItems": 1},
                # Development mode: the backend lets unregistered charge point ids connect.
                "allow_unknown_chargers": {"type": "boolean"},
                # Relevant charge points under the UK's Smart Charge Points Regulations 2021.
                "smart_charge_points": {"type": "boolean"},
                "dsr_chargers": {"type": "integer", "minimum": 0},
                # The first N chargers take charging schedules in A only, as many real ones do.
                "amps_only_chargers": {"type": "integer", "minimum": 0},
                # Every charger wired to 1 or 3 phases whatever its rating (unset: above 7.4 kW, 3),
                # and whether they say so (1.6 ConnectorPhaseRotation, 2.0.1 SupplyPhases).
                "phases": {"enum": [1, 3]},
                "phases_said": {"type": "boolean"},
                # Whether they switch a three-phase connector to one phase (and say so).
                "phase_switching": {"type": "boolean"},
                # How hosts price: each charger's listed price, or dynamic yield pricing within bounds.
                "pricing": {"enum": ["flat", "dynamic"]},
            },
        },
        "drivers": {
            "type": "object",
            "additionalProperties": False,
            "required": ["count"],
            "properties": {
                "count": {"type": "integer", "minimum": 0, "maximum": 20_000},
                "arrival_window": _rate,
                "cancel_rate": _rate,
                "no_show_rate": _rate,
                "travel_minutes": _range,
                "radius_m": {"type": "number", "exclusiveMinimum": 0, "maximum": 100_000},
                "override_rate": _rate,
                # The most each driver pays per kWh (pence), drawn from the range; unset: any price.
                "max_price_per_kwh": _range,
            },
        },
        # Site and feeder limits: each charger on its own site, the sites dealt out over
        # the feeders in turn; flexibility events lower a feeder's limit for a window.
        "grid": {
            "type": "object",
            "additionalProperties": False,
            "required": ["feeder_limit_w"],
            "properties": {
                "feeders": {"type": "integer", "minimum": 1, "maximum": 1000},
                "feeder_limit_w": {"type": "integer", "minimum": 1},
                "site_limit_w": {"type": "integer", "minimum": 1},
                "house_load_w": {"type": "integer", "minimum": 0},
                # "profile": each house follows a seeded UK domestic day (simulators/house_load.py),
                # reported to the backend by its site meter as it changes.
                "house_load": {"enum": ["constant", "profile"]},
                "flex_events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["feeder", "at_minute", "minutes", "limit_w"],
                        "properties": {
                            "feeder": {"type": "integer", "minimum": 1},
                            "at_minute": {"type": "number", "minimum": 0},
                            "minutes": {"type": "number", "exclusiveMinimum": 0},
                            "limit_w": {"type": "integer", "minimum": 0},
                        },
                    },
                },
            },
        },
        "faults": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["at_minute", "action"],
                "properties": {
                    "at_minute": {"type": "number", "minimum": 0},
                    "action": {"enum": sorted(ACTIONS)},
                    "count": {"type": "integer", "minimum": 1},
                    "minutes": {"type": "number", "exclusiveMinimum": 0},
                    "lose_queue": {"type": "boolean"},
                    "seconds": {"type": "number"},
                    "percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                    # Names the virtual chargers answer, checked against their dialects (did you mean...).
                    "commands": {"type": "array", "items": {"type": "string"}},
                    "frames": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "protocol": {"enum": UNQUOTED + list(PROTOCOLS)},
                    "spoofer": {"enum": ["fleet", "unregistered"]},
                    "failpoint": {"enum": sorted(FAILPOINTS)},
                },
            },
        },
        # A business account's recurring night blocks on the fleet's first chargers.
        "fleet_hub": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "chargers": {"type": "integer", "minimum": 1},
                "days": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "integer", "minimum": 0, "maximum": 6},
                },
                "start": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                "end": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
                "notice_hours": {"type": "integer", "minimum": 0, "maximum": 24 * 90},
                "late_penalty": {"type": "integer", "minimum": 0},
                "van_wh": {"type": "integer", "minimum": 1, "maximum": 150_000},
                "van_arrival_max_minutes": {"type": "integer", "minimum": 0, "maximum": 14},
                "late_cancels": {"type": "integer", "minimum": 0},
                "pay_percent": {"type": "integer", "minimum": 0, "maximum": 100},
            },
        },
        # V2G guests with bidirectional cars on the fleet's first (OCPP 2.1) chargers.
        "v2g": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "guests": {"type": "integer", "minimum": 1},
                "arrive_after_minutes": {"type": "integer", "minimum": 0},
                "hours": {"type": "integer", "minimum": 1, "maximum": 24},
                "export_price_per_kwh": {"type": "integer", "minimum": 0, "maximum": MAX_EXPORT_PRICE},
                "soc_floor_pct": {"type": "integer", "minimum": MIN_SOC_FLOOR, "maximum": 100},
                "battery_wh": {"type": "integer", "minimum": 1_000, "maximum": 200_000},
                "arrival_soc_pct": {"type": "integer", "minimum": 0, "maximum": 100},
                "want_wh": {"type": "integer", "minimum": 1, "maximum": 150_000},
                "buyer": {"enum": ["grid", "home"]},
            },
        },
        "expect": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "invariants": {"enum": ["all"]},
                "metrics": {"type": "object", "additionalProperties": _comparison},
            },
        },
    },
}


class ScenarioError(Exception):
    """A scenario file that cannot run; the message names the file, and the line and field of every
    mistake found in it (also in `mistakes`, when the file could be read as YAML)."""

    def __init__(self, message: str, mistakes: tuple[Mistake, ...] = ()) -> None:
        super().__init__(message)
        self.mistakes = mistakes


# What a run's summary holds (simulators/report.py; a test keeps the two in step), so an expectation
# naming anything else is a typo, refused when the file is read rather than counted as 0.
SUMMARY_METRICS = frozenset(
    {
        "booking_conflicts",
        "bookings",
        "bookings_by_status",
        "bookings_no_driver_heard_of",
        "bookings_refused_payments_down",
        "cancelled_by_host",
        "captured_pence",
        "charger_reconnects",
        "chargers_went_offline",
        "dead_letters",
        "dpi_discrepancies",
        "dpi_sellers",
        "driver_outcomes",
        "energy_wh",
        "fault_outcomes",
        "faults_fired",
        "fees_pence",
        "fleet_hub",
        "frames_left_queued",
        "v2g",
        "host_payouts_pence",
        "hosts_notified",
        "no_charger_because",
        "paid_out_pence",
        "payments_backlog",
        "payments_retried",
        "platform_fees_pence",
        "pricing",
        "processor_fees_pence",
        "security_events",
        "sessions",
        "sessions_by_protocol",
        "sessions_closed_without_stop",
        "smart_charging",
        "grid",
        "vat_pence",
    }
)
# The summary's breakdowns and the names under them; fault outcomes are each fault's own.
SUMMARY_BREAKDOWNS: dict[str, frozenset[str] | None] = {
    "bookings_by_status": frozenset(s.value for s in BookingStatus),
    "driver_outcomes": frozenset(DRIVER_OUTCOMES),
    "no_charger_because": frozenset(NO_CHARGER_REASONS),
    "sessions_by_protocol": frozenset("ocpp" + v.replace(".", "") for v in PROTOCOLS),
    "smart_charging": frozenset(SMART_NAMES),
    "pricing": frozenset(PRICING_NAMES),
    "fleet_hub": frozenset(HUB_NAMES),
    "grid": frozenset(GRID_NAMES),
    "v2g": frozenset(V2G_NAMES),
    "fault_outcomes": None,
}


def metric_problem(metric: str) -> str | None:
    """Why `metric` names nothing in a run's summary (with the likeliest name meant), or None."""
    head, _, rest = metric.partition(".")
    if head not in SUMMARY_METRICS:
        return _unknown("metric", head, SUMMARY_METRICS)
    if head not in SUMMARY_BREAKDOWNS:
        return None if not rest else f"{head} is a number, not a breakdown: drop .{rest}"
    names = SUMMARY_BREAKDOWNS[head]
    if not rest:
        return f"{head} is a breakdown: name one of it, e.g. {head}.{min(names or {'<name>'})}"
    if names is not None and rest not in names:
        return _unknown(f"{head} name", rest, names)
    return None


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (one of {', '.join(sorted(known))})"
    return f"unknown {what} {name!r}{hint}"


@dataclass(frozen=True)
class Expectation:
    metric: str  # dotted path into the run summary, e.g. "bookings_by_status.completed"
    equals: int | None = None
    at_least: int | None = None
    at_most: int | None = None

    def check(self, summary: dict[str, Any]) -> tuple[bool, str]:
        value: Any = summary
        for part in self.metric.split("."):
            value = value.get(part, 0) if isinstance(value, dict) else 0
        if not isinstance(value, int):
            return False, f"{self.metric} is not a number in the summary"
        ok = (
            (self.equals is None or value == self.equals)
            and (self.at_least is None or value >= self.at_least)
            and (self.at_most is None or value <= self.at_most)
        )
        wanted = ", ".join(
            f"{k.replace('_', ' ')} {v}"
            for k, v in (("equals", self.equals), ("at_least", self.at_least), ("at_most", self.at_most))
            if v is not None
        )
        return ok, f"{self.metric} = {value} (expected {wanted})"


@dataclass(frozen=True)
class Scenario:
    path: Path
    name: str
    description: str
    params: LiveParams
    expectations: tuple[Expectation, ...] = field(default=())
    engine: str = "live"  # or "des": `scenario run` runs it in SimPy virtual time


class _LineLoader(yaml.SafeLoader):
    """Keeps each mapping value's line so errors can point into the file."""


def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*path, key.value)] = key.start_mark.line + 1
            _lines(value, (*path, key.value), out)
            out[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)


def _where(lines: dict[tuple[Any, ...], int], path: Iterable[Any]) -> int:
    parts = tuple(path)
    while parts not in lines and parts:
        parts = parts[:-1]
    return lines.get(parts, 1)


# A fault whose `count` is a number of chargers (its victims), and one whose `count` is a number
# of bookings, at most one per driver.
CHARGER_FAULTS = frozenset(
    {
        "disconnect",
        "silence",
        "reboot",
        "duplicate_frames",
        "clock_skew",
        "clock_jump",
        "drop_frames",
        "delay_responses",
        "reject_commands",
        "malformed_frames",
    }
)
BOOKING_FAULTS = frozenset({"host_cancels", "racing_cancels"})
# What an enumerated value is called in an "unknown ..." message, by its key.
_ENUM_NAMES = {"action": "fault", "protocols": "OCPP version", "protocol": "OCPP version"}


@dataclass(frozen=True, order=True)
class Mistake:
    """One thing wrong in a scenario file: where (the line of the key itself) and what."""

    line: int
    field: str
    message: str


class _Found:
    """Every mistake of one file, each placed at the line of the key it concerns."""

    def __init__(self, lines: dict[tuple[Any, ...], int]) -> None:
        self.lines = lines
        self.mistakes: list[Mistake] = []

    def add(self, field_path: Iterable[Any], message: str) -> None:
        parts = tuple(field_path)
        name = ".".join(map(str, parts)) or "(top)"
        self.mistakes.append(Mistake(_where(self.lines, parts), name, message))

    def error(self, path: Path) -> ScenarioError:
        return ScenarioError(
            "\n".join(f"{path}:{m.line}: {m.field}: {m.message}" for m in sorted(self.mistakes)),
            tuple(sorted(self.mistakes)),
        )


def load(path: Path) -> Scenario:
    """The scenario in `path`, or a ScenarioError naming every mistake in it, each with its line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _lines(node, (), lines)
    found = _Found(lines)
    broken: set[tuple[Any, ...]] = set()  # where the schema found mistakes: no rule looks there
    for e in Draft7Validator(SCHEMA).iter_errors(data):
        broken |= _schema_mistake(found, e)
    if isinstance(data, dict):
        _rule_mistakes(found, data, broken)
    if found.mistakes:
        raise found.error(path)
    scenario = _build(path, data)
    # Whether it can run at all depends on where it runs too (a Redis URL, a database): `run_live`
    # says what is missing then; the file alone is refused for what no run could mend.
    for wrong in problems(replace(scenario.params, redis_url="redis://", database_url="sqlite:///file.db")):
        found.add(("faults",) if "fault" in wrong else ("backend",), wrong)
    if found.mistakes:
        raise found.error(path)
    return scenario


def _schema_mistake(found: _Found, e: Any) -> set[tuple[Any, ...]]:  # Any: jsonschema's error
    """A schema error as people read it: unknown keys one by one at their own lines, with the key
    likeliest meant; an unknown name with the one likeliest meant. Returns where it is."""
    at = tuple(e.absolute_path)
    if e.validator == "additionalProperties" and isinstance(e.instance, dict):
        known = e.schema.get("properties", {})
        unknown = [key for key in e.instance if key not in known]
        for key in unknown:
            found.add((*at, key), _unknown("key", str(key), known))
        return {(*at, key) for key in unknown}
    if e.validator == "enum" and isinstance(e.instance, str):
        named = next((p for p in reversed(at) if isinstance(p, str)), "value")
        choices = [str(v) for v in e.validator_value]
        found.add(at, _unknown(_ENUM_NAMES.get(named, named), e.instance, dict.fromkeys(choices)))
    else:
        found.add(at, e.message)
    return {at}


def _clean(broken: set[tuple[Any, ...]], *at: tuple[Any, ...]) -> bool:
    """No schema mistake within any of `at`, nor at a section holding one (the whole file aside)."""
    return not any(b[: len(a)] == a or (b and a[: len(b)] == b) for a in at for b in broken)


def _rule_mistakes(found: _Found, d: dict[str, Any], broken: set[tuple[Any, ...]]) -> None:
    """What the schema cannot say; only parts the schema found sound are looked at."""
    fleet, drivers = d.get("fleet"), d.get("drivers")
    for section, key in (
        ("fleet", "price_per_kwh"),
        ("drivers", "travel_minutes"),
        ("drivers", "max_price_per_kwh"),
    ):
        r = d[section].get(key) if isinstance(d.get(section), dict) else None
        if r is not None and _clean(broken, (section, key)) and r["min"] > r["max"]:
            found.add((section, key), "min must not exceed max")
    rates = (("drivers", "cancel_rate"), ("drivers", "no_show_rate"))
    if isinstance(drivers, dict) and _clean(broken, *rates) and _rates(drivers) > 1:
        found.add(("drivers",), "cancel_rate + no_show_rate cannot exceed 1")
    sound_fleet = isinstance(fleet, dict) and "chargers" in fleet
    sound_fleet = sound_fleet and _clean(broken, ("fleet", "chargers"), ("fleet", "protocols"))
    sound_drivers = isinstance(drivers, dict) and "count" in drivers
    sound_drivers = sound_drivers and _clean(broken, ("drivers", "count"))
    duration_s = int(d.get("duration_minutes", 120)) * 60 if _clean(broken, ("duration_minutes",)) else None
    faults = d.get("faults", [])
    for i, f in enumerate(faults if isinstance(faults, list) else []):
        if _clean(broken, ("faults", i)):
            _fault_mistakes(
                found,
                i,
                f,
                duration_s=duration_s,
                fleet=fleet if sound_fleet else None,
                drivers=drivers["count"] if sound_drivers and isinstance(drivers, dict) else None,
            )
    if isinstance(d.get("start"), str) and _clean(broken, ("start",)) and _start_of(d["start"]) is None:
        found.add(("start",), "not an ISO 8601 time with its UTC offset, e.g. 2026-03-04T21:40:00Z")
    dsr = fleet.get("dsr_chargers") if isinstance(fleet, dict) else None
    if (
        sound_fleet
        and isinstance(fleet, dict)
        and dsr is not None
        and _clean(broken, ("fleet", "dsr_chargers"))
    ):
        if dsr > fleet["chargers"]:
            found.add(
                ("fleet", "dsr_chargers"), f"{dsr} chargers asked for, but the fleet has {fleet['chargers']}"
            )
        if dsr and not fleet.get("smart_charge_points", False):
            found.add(
                ("fleet", "dsr_chargers"), "only smart charge points (fleet.smart_charge_points) provide DSR"
            )
    amps = fleet.get("amps_only_chargers") if isinstance(fleet, dict) else None
    if (
        sound_fleet
        and isinstance(fleet, dict)
        and amps is not None
        and _clean(broken, ("fleet", "amps_only_chargers"))
        and amps > fleet["chargers"]
    ):
        said = f"{amps} chargers asked for, but the fleet has {fleet['chargers']}"
        found.add(("fleet", "amps_only_chargers"), said)
    if d.get("engine") == "des":
        _des_mistakes(found, d, broken)
    hub = d.get("fleet_hub")
    if isinstance(hub, dict) and _clean(broken, ("fleet_hub",)):
        _hub_mistakes(found, d, hub, fleet if sound_fleet else None)
    _grid_mistakes(found, d, broken)
    v2g = d.get("v2g")
    if isinstance(v2g, dict) and _clean(broken, ("v2g",)) and sound_fleet and isinstance(fleet, dict):
        if v2g.get("guests", V2gShape().guests) > fleet["chargers"]:
            found.add(("v2g", "guests"), f"more guests than the fleet's {fleet['chargers']} chargers")
        if [str(p) for p in fleet.get("protocols", [V16])] != [V21]:
            found.add(("v2g",), 'V2G guests need OCPP 2.1 chargers: fleet.protocols: ["2.1"]')
    expect = d.get("expect")
    metrics = expect.get("metrics") if isinstance(expect, dict) else None
    for metric in metrics if isinstance(metrics, dict) else {}:
        problem = metric_problem(str(metric))
        if problem is not None:
            found.add(("expect", "metrics", metric), problem)


def _hub_mistakes(found: _Found, d: dict[str, Any], hub: dict[str, Any], fleet: Any) -> None:
    for key in ("start", "end"):
        if key in hub and _clock_time(hub[key]) is None:
            found.add(("fleet_hub", key), "not a time of day like 20:00")
    if "start" in hub and hub.get("start") == hub.get("end", "06:00"):
        found.add(("fleet_hub", "end"), "a block must not start and end at the same time")
    if isinstance(fleet, dict) and hub.get("chargers", HubShape().chargers) > fleet["chargers"]:
        found.add(("fleet_hub", "chargers"), f"more chargers than the fleet's {fleet['chargers']}")


def _clock_time(text: str) -> time | None:
    try:
        return time.fromisoformat(text)
    except ValueError:
        return None


def _start_of(text: str) -> datetime | None:
    """An aware instant from ISO 8601 text, or None."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if at.tzinfo is None else at.astimezone(UTC)


def _des_mistakes(found: _Found, d: dict[str, Any], broken: set[tuple[Any, ...]]) -> None:
    """What the discrete-event engine cannot run: backend processes, and faults it cannot model."""
    if isinstance(d.get("backend"), dict) and d["backend"].get("processes"):
        found.add(("backend", "processes"), "the DES engine runs the backend in its own process")
    faults = d.get("faults", [])
    for i, f in enumerate(faults if isinstance(faults, list) else []):
        if _clean(broken, ("faults", i)) and isinstance(f, dict):
            why = not_in_des((Fault(at_s=0, action=f["action"]),))
            if why is not None:
                found.add(("faults", i, "action"), why)


def _grid_mistakes(found: _Found, d: dict[str, Any], broken: set[tuple[Any, ...]]) -> None:
    grid = d.get("grid")
    if not isinstance(grid, dict) or not _clean(broken, ("grid",)):
        return
    feeders = grid.get("feeders", 1)
    for i, e in enumerate(grid.get("flex_events", [])):
        if e["feeder"] > feeders:
            found.add(("grid", "flex_events", i, "feeder"), f"feeder {e['feeder']} of {feeders}")
    if grid.get("house_load") == "profile" and "house_load_w" in grid:
        found.add(("grid", "house_load_w"), "a constant house load beside `house_load: profile`")


def _rates(drivers: dict[str, Any]) -> float:
    rate: float = drivers.get("cancel_rate", 0.1) + drivers.get("no_show_rate", 0.0)
    return rate


def _fault_mistakes(
    found: _Found,
    i: int,
    f: dict[str, Any],
    *,
    duration_s: int | None,
    fleet: dict[str, Any] | None,
    drivers: int | None,
) -> None:
    action = f["action"]
    if duration_s is not None and f["at_minute"] * 60 > duration_s:
        found.add(("faults", i, "at_minute"), "fires after the run has ended")
    if action in LASTING and "minutes" not in f:
        found.add(("faults", i), f"{action} needs minutes (how long it lasts)")
    if action == "clock_skew" and "seconds" not in f:
        found.add(("faults", i), "clock_skew needs seconds (how far the clocks are off)")
    if action == "clock_jump" and f.get("seconds", 0) == 0:
        found.add(("faults", i), "clock_jump needs seconds (how far the clocks move; below 0 is back)")
    if action == "delay_responses" and f.get("seconds", 0) <= 0:
        found.add(("faults", i), "delay_responses needs seconds (how late the answers come), above 0")
    if action == "drop_frames" and "percent" not in f:
        found.add(("faults", i), "drop_frames needs percent (the share of frames lost)")
    if action == "malformed_frames" and "frames" not in f:
        found.add(("faults", i), "malformed_frames needs frames (how many to send)")
    if "failpoint" in f and action != "backend_crash":
        found.add(("faults", i, "failpoint"), "only backend_crash takes a failpoint")
    if action == "provider_slow" and not 0 < f.get("seconds", 0) < PROVIDER_SLOW_MAX_S:
        found.add(
            ("faults", i),
            "provider_slow needs seconds (how long each provider call takes), above 0 and under "
            f"{PROVIDER_SLOW_MAX_S} (slower is an outage: use payment_outage)",
        )
    count = f.get("count", 1)
    where = ("faults", i, "count") if "count" in f else ("faults", i)
    if fleet is not None and action in CHARGER_FAULTS:
        versions = _fleet_protocols(fleet)
        wanted = None if "protocol" not in f else str(f["protocol"])
        if wanted is not None and wanted not in versions:
            found.add(("faults", i, "protocol"), f"no charger of the fleet speaks OCPP {wanted}")
            return
        able = sum(1 for v in versions if wanted in (None, v))
        if count > able:
            of = "chargers" if wanted is None else f"chargers speaking OCPP {wanted}"
            found.add(where, f"{count} chargers asked for, but the fleet has {able} {of}")
        if action == "reject_commands":
            known = set().union(*(_commands_of(v) for v in set(versions) if wanted in (None, v)))
            what = "command" if wanted is None else f"OCPP {wanted} command"
            for j, name in enumerate(f.get("commands", ())):
                if name not in known:
                    found.add(("faults", i, "commands", j), _unknown(what, name, known))
    if drivers is not None and action in BOOKING_FAULTS and count > drivers:
        found.add(where, f"{count} bookings asked for, but only {drivers} drivers book (one each)")


def _fleet_protocols(fleet: dict[str, Any]) -> list[OcppVersion]:
    """Each charger's OCPP version, dealt out as the fleet deals them."""
    protocols = [OcppVersion(str(p)) for p in fleet.get("protocols", [V16])]
    return [protocols[n % len(protocols)] for n in range(fleet["chargers"])]


def _commands_of(protocol: OcppVersion) -> frozenset[str]:
    """The CSMS commands a virtual charger of `protocol` answers: its dialect's handler table, only
    built here (its handlers are never called, so they need no charger)."""
    from typing import cast

    from simulators.dialect import dialect_for

    return frozenset(dialect_for(protocol).handlers(cast(Any, None)))


def _build(path: Path, d: dict[str, Any]) -> Scenario:
    """A sound file's scenario (`load` has found nothing wrong in it)."""
    fleet, drivers = d["fleet"], d["drivers"]
    duration_s = int(d.get("duration_minutes", 120)) * 60
    price = fleet.get("price_per_kwh", {"min": 25, "max": 45})
    travel = drivers.get("travel_minutes", {"min": 5, "max": 20})
    params = LiveParams(
        chargers=fleet["chargers"],
        drivers=drivers["count"],
        duration_s=duration_s,
        seed=d.get("seed", 7),
        speed=float(d.get("speed", 240.0)),
        city=d.get("city", "bristol"),
        fleet=FleetShape(
            radius_m=float(fleet.get("radius_m", 6_000)),
            powers_w=tuple(fleet.get("powers_w", FleetShape().powers_w)),
            protocols=tuple(OcppVersion(str(p)) for p in fleet.get("protocols", [V16])),
            price_min=price["min"],
            price_max=price["max"],
            smart_charge_points=bool(fleet.get("smart_charge_points", False)),
            dsr_chargers=int(fleet.get("dsr_chargers", 0)),
            amps_only_chargers=int(fleet.get("amps_only_chargers", 0)),
            phases=int(fleet["phases"]) if "phases" in fleet else None,
            phases_said=bool(fleet.get("phases_said", True)),
            phase_switching=bool(fleet.get("phase_switching", True)),
            pricing=str(fleet.get("pricing", "flat")),
            grid=_grid_of(d["grid"]) if "grid" in d else None,
        ),
        allow_unknown_chargers=bool(fleet.get("allow_unknown_chargers", False)),
        start=(_start_of(d["start"]) or DEFAULT_START) if "start" in d else DEFAULT_START,
        processes=int(d.get("backend", {}).get("processes", 0)),
        behaviour=DriverBehaviour(
            arrival_window=float(drivers.get("arrival_window", 0.6)),
            cancel_rate=float(drivers.get("cancel_rate", 0.1)),
            no_show_rate=float(drivers.get("no_show_rate", 0.0)),
            travel_min_s=travel["min"] * 60,
            travel_max_s=travel["max"] * 60,
            radius_m=float(drivers.get("radius_m", 6_000)),
            override_rate=float(drivers.get("override_rate", 0.0)),
            max_price=_range_of(drivers.get("max_price_per_kwh")),
        ),
        faults=tuple(
            Fault(
                at_s=math.floor(f["at_minute"] * 60),
                action=f["action"],
                count=f.get("count", 1),
                duration_s=math.floor(f.get("minutes", 0) * 60),
                lose_queue=bool(f.get("lose_queue", False)),
                skew_s=float(f.get("seconds", 0)) if f["action"] in ("clock_skew", "clock_jump") else 0.0,
                delay_s=float(f.get("seconds", 0)) if f["action"] == "delay_responses" else 0.0,
                percent=float(f.get("percent", 0)),
                commands=tuple(f.get("commands", ())),
                frames=int(f.get("frames", 0)),
                protocol=None if "protocol" not in f else str(f["protocol"]),
                latency_s=float(f.get("seconds", 0)) if f["action"] == "provider_slow" else 0.0,
                spoofer=f.get("spoofer", "fleet"),
                failpoint=f.get("failpoint"),
            )
            for f in d.get("faults", [])
        ),
    )
    hub = d.get("fleet_hub")
    if hub is not None:
        default = HubShape()
        params = replace(
            params,
            fleet_hub=HubShape(
                chargers=hub.get("chargers", default.chargers),
                weekdays=frozenset(hub.get("days", sorted(default.weekdays))),
                start=_clock_time(hub["start"]) or default.start if "start" in hub else default.start,
                end=_clock_time(hub["end"]) or default.end if "end" in hub else default.end,
                notice_hours=hub.get("notice_hours", default.notice_hours),
                late_penalty=hub.get("late_penalty", default.late_penalty),
                van_wh=hub.get("van_wh", default.van_wh),
                van_arrival_max_s=hub.get("van_arrival_max_minutes", default.van_arrival_max_s // 60) * 60,
                late_cancels=hub.get("late_cancels", default.late_cancels),
                pay_percent=hub.get("pay_percent", default.pay_percent),
            ),
        )
    v2g = d.get("v2g")
    if v2g is not None:
        params = replace(params, v2g=V2gShape(**v2g))
    metrics = d.get("expect", {}).get("metrics", {})
    expectations = tuple(Expectation(metric, **cmp) for metric, cmp in metrics.items())
    return Scenario(
        path, d["name"], d.get("description", ""), params, expectations, engine=d.get("engine", "live")
    )


def _range_of(r: dict[str, int] | None) -> tuple[int, int] | None:
    return None if r is None else (r["min"], r["max"])


def _grid_of(g: dict[str, Any]) -> GridShape:
    return GridShape(
        feeders=int(g.get("feeders", 1)),
        feeder_limit_w=int(g["feeder_limit_w"]),
        site_limit_w=int(g.get("site_limit_w", GridShape().site_limit_w)),
        house_load_w=int(g.get("house_load_w", 0)),
        house_profile=g.get("house_load") == "profile",
        flex_events=tuple(
            FlexShape(
                feeder=int(e["feeder"]),
                at_s=math.floor(e["at_minute"] * 60),
                duration_s=math.floor(e["minutes"] * 60),
                limit_w=int(e["limit_w"]),
            )
            for e in g.get("flex_events", [])
        ),
    )


def discover(paths: Iterable[Path]) -> list[Path]:
    """Scenario files named directly, plus every *.yaml/*.yml in named directories (sorted)."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(q for q in p.iterdir() if q.suffix in SUFFIXES and q.is_file()))
        elif p.exists():
            found.append(p)
        else:
            raise ScenarioError(f"{p}: no such file or directory")
    return found
