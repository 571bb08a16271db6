"""Every shipped scenario runs green; a broken system turns the right one red; bad files are refused."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chargeshare.cli.app import app
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16, V21, V201
from chargeshare.services.ports import SlotClaim
from simulators.scenario import ScenarioError, discover, load
from simulators.scenario_runner import run_scenario
from tests.busy_cores import busy_cores
from tests.cli_runner import CliRunner

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = discover([ROOT / "scenarios"])
runner = CliRunner()


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
@pytest.mark.slow
async def test_shipped_scenario_passes(path: Path) -> None:
    # With every core kept busy: a live run must not depend on how loaded the machine is.
    with busy_cores():
        result = await run_scenario(load(path))
    assert result.ok, result.failures
    assert result.expectations, "a scenario must expect something of its own"


def test_at_least_the_booking_scenarios_ship() -> None:
    assert {"happy-path", "race-same-charger", "host-cancels", "no-show"} <= {p.stem for p in SCENARIOS}


@pytest.mark.slow
async def test_without_the_overlap_check_the_race_scenario_goes_red(monkeypatch: pytest.MonkeyPatch) -> None:
    # Mutate the store: its overlap query no longer sees any live booking (SQLite has no constraint).
    # The charger's reservations then turn the extra bookings away, but the scenario must still fail.
    monkeypatch.setattr("chargeshare.adapters.sql.bookings.LIVE_STATES", frozenset())
    # The slot claims in front would refuse the racers first; with them out of service (as when
    # their Redis is unreachable) the database is the only guard, which is what this mutant breaks.
    monkeypatch.setattr(
        "chargeshare.adapters.redis_slot_claims.MemorySlotClaims.claim",
        lambda self, charger_id, *_: SlotClaim(charger_id, ""),
    )
    result = await run_scenario(load(ROOT / "scenarios" / "race-same-charger.yaml"))
    assert not result.ok
    assert any(f.startswith("expectation: bookings = ") for f in result.failures), result.failures


@pytest.mark.slow
async def test_a_doubled_capture_turns_the_happy_path_red(monkeypatch: pytest.MonkeyPatch) -> None:
    class DoubleTariff(Tariff):
        def cost(self, energy: int) -> int:
            return 2 * super().cost(energy)

    monkeypatch.setattr("chargeshare.services.charging.Tariff", DoubleTariff)
    result = await run_scenario(load(ROOT / "scenarios" / "happy-path.yaml"))
    assert any(f.startswith("invariant captured_equals_metered_cost") for f in result.failures)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("name: x\nfleet: {chargers: 1}\ndrivers:\n  count: -1\n", ":4: drivers.count: -1 is less than"),
        (
            "name: x\nfleet:\n  chargers: 1\n  colour: red\ndrivers: {count: 1}\n",
            ":4: fleet.colour: unknown key 'colour' (one of allow_unknown_chargers, amps_only_chargers, "
            "chargers,",
        ),
        ("name: x\nfleet: {chargers: 1}\n", ":1: (top): 'drivers' is a required property"),
        (
            "name: x\nengine: des\nfleet: {chargers: 2}\ndrivers: {count: 0}\nv2g: {guests: 2}\n",
            ':5: v2g: V2G guests need OCPP 2.1 chargers: fleet.protocols: ["2.1"]',
        ),
        (
            "name: x\nfleet: {chargers: 1, protocols: ['2.1']}\ndrivers: {count: 0}\nv2g: {guests: 2}\n",
            ":4: v2g.guests: more guests than the fleet's 1 chargers",
        ),
        (
            "name: x\nfleet: {chargers: 1}\ndrivers: {count: 1}\n"
            "faults:\n  - {at_minute: 1, action: meteor}\n",
            ":5: faults.0.action: unknown fault 'meteor' (one of backend_crash, clock_jump,",
        ),
        (
            "name: x\nduration_minutes: 10\nfleet: {chargers: 1}\ndrivers: {count: 1}\nfaults:\n"
            "  - {at_minute: 11, action: host_cancels}\n",
            ":6: faults.0.at_minute: fires after the run has ended",
        ),
        (
            "name: x\nfleet: {chargers: 1, price_per_kwh: {min: 9, max: 3}}\ndrivers: {count: 1}\n",
            ":2: fleet.price_per_kwh: min must not exceed max",
        ),
        ("name: [unclosed\n", ":2: not valid YAML"),
        (
            "name: x\nfleet: {chargers: 2, protocols: [1.6, '2.0']}\ndrivers: {count: 1}\n",
            ":2: fleet.protocols.1: unknown OCPP version '2.0'; did you mean '2.0.1'?",
        ),
        (
            "name: x\nfleet: {chargers: 1}\ndrivers: {count: 1}\nfaults:\n"
            "  - {at_minute: 1, action: drop_frames, count: 1}\n",
            ":5: faults.0: drop_frames needs percent",
        ),
        (
            "name: x\nfleet: {chargers: 1}\ndrivers: {count: 1}\nfaults:\n"
            "  - {at_minute: 1, action: delay_responses}\n",
            ":5: faults.0: delay_responses needs seconds",
        ),
        (
            "name: x\nfleet: {chargers: 1}\ndrivers: {count: 1}\nfaults:\n"
            "  - {at_minute: 1, action: malformed_frames}\n",
            ":5: faults.0: malformed_frames needs frames",
        ),
        (
            "name: x\nfleet: {chargers: 1}\ndrivers: {count: 1}\nfaults:\n"
            "  - {at_minute: 1, action: provider_slow, minutes: 5}\n",
            ":5: faults.0: provider_slow needs seconds",
        ),
        (
            "name: x\nfleet: {chargers: 1}\ndrivers: {count: 1}\nfaults:\n"
            "  - {at_minute: 1, action: provider_slow, minutes: 5, seconds: 120}\n",
            ":5: faults.0: provider_slow needs seconds (how long each provider call takes), above 0 and "
            "under 120 (slower is an outage: use payment_outage)",
        ),
        (
            "name: x\nfleet: {chargers: 1}\ndrivers: {count: 1}\nfaults:\n"
            "  - {at_minute: 1, action: spoofed_charger, spoofer: a-stranger}\n",
            ":5: faults.0.spoofer: unknown spoofer 'a-stranger' (one of fleet, unregistered)",
        ),
        (
            "name: x\nfleet: {chargers: 1}\ndrivers: {count: 1}\nexpect:\n  metrics:\n"
            "    sesions: {at_least: 1}\n",
            ":6: expect.metrics.sesions: unknown metric 'sesions'; did you mean 'sessions'?",
        ),
        (
            "name: x\nfleet: {chargers: 1}\ndrivers: {count: 1}\nexpect:\n  metrics:\n"
            "    driver_outcomes.chargd: {equals: 1}\n",
            ":6: expect.metrics.driver_outcomes.chargd: unknown driver_outcomes name 'chargd'; "
            "did you mean 'charged'?",
        ),
        (
            "name: x\nfleet: {chargers: 1}\ndrivers: {count: 1}\nexpect:\n  metrics:\n"
            "    sessions.open: {equals: 1}\n",
            ":6: expect.metrics.sessions.open: sessions is a number, not a breakdown",
        ),
        (
            "name: x\nstart: '2026-03-04 21:30'\nfleet: {chargers: 1}\ndrivers: {count: 1}\n",
            ":2: start: not an ISO 8601 time with its UTC offset",
        ),
        (
            "name: x\nfleet: {chargers: 2, smart_charge_points: true, dsr_chargers: 3}\n"
            "drivers: {count: 1}\n",
            ":2: fleet.dsr_chargers: 3 chargers asked for, but the fleet has 2",
        ),
        (
            "name: x\nfleet: {chargers: 2, amps_only_chargers: 3}\ndrivers: {count: 1}\n",
            ":2: fleet.amps_only_chargers: 3 chargers asked for, but the fleet has 2",
        ),
        (
            "name: x\nfleet: {chargers: 2, dsr_chargers: 1}\ndrivers: {count: 1}\n",
            ":2: fleet.dsr_chargers: only smart charge points (fleet.smart_charge_points) provide DSR",
        ),
        (
            "name: x\nengine: des\nfleet: {chargers: 1}\ndrivers: {count: 1}\nfaults:\n"
            "  - {at_minute: 1, action: drop_frames, percent: 5}\n",
            ":6: faults.0.action: the DES engine cannot model fault(s) drop_frames",
        ),
        (
            "name: x\nengine: des\nfleet: {chargers: 1}\ndrivers: {count: 1}\ngrid:\n"
            "  feeder_limit_w: 9000\n  flex_events:\n"
            "    - {feeder: 2, at_minute: 1, minutes: 5, limit_w: 0}\n",
            ":8: grid.flex_events.0.feeder: feeder 2 of 1",
        ),
        (
            "name: x\nfleet: {chargers: 1}\ndrivers: {count: 1, override_rate: 2}\n",
            ":3: drivers.override_rate: 2 is greater than the maximum of 1",
        ),
        (
            "name: x\nfleet: {chargers: 1}\ndrivers: {count: 1}\nexpect:\n  metrics:\n"
            "    smart_charging.delay_max: {at_most: 600}\n",
            ":6: expect.metrics.smart_charging.delay_max: unknown smart_charging name 'delay_max'; "
            "did you mean 'delay_max_s'?",
        ),
    ],
)
def test_bad_files_name_the_file_line_and_field(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load(path)
    assert f"{path}{where}" in str(err.value)


MISTAKES = """\
name: many-mistakes
fleet:
  chargers: 10
  protocols: ["1.6", "1.6", "2.0.1"]
  radius: 3000
drivers:
  count: 4
  no_show_rat: 0.2
faults:
  - {at_minute: 1, action: disconect, minutes: 5}
  - {at_minute: 2, action: disconnect, count: 20, minutes: 5}
  - at_minute: 3
    action: reject_commands
    count: 4
    protocol: "2.0.1"
    commands: [ReserveNow, RemoteStartTransaction]
  - {at_minute: 4, action: reject_commands, commands: [ReserveNo]}
  - {at_minute: 5, action: host_cancels, count: 5}
expect:
  metrics:
    sesions: {at_least: 1}
    fault_outcomes.commands_rejected: {at_least: 1}
"""


def test_every_mistake_of_a_file_at_once_each_at_its_keys_line(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(MISTAKES)
    with pytest.raises(ScenarioError) as err:
        load(path)
    assert str(err.value).splitlines() == [
        f"{path}:5: fleet.radius: unknown key 'radius'; did you mean 'radius_m'?",
        f"{path}:8: drivers.no_show_rat: unknown key 'no_show_rat'; did you mean 'no_show_rate'?",
        f"{path}:10: faults.0.action: unknown fault 'disconect'; did you mean 'disconnect'?",
        f"{path}:11: faults.1.count: 20 chargers asked for, but the fleet has 10 chargers",
        f"{path}:14: faults.2.count: 4 chargers asked for, but the fleet has 3 chargers speaking OCPP 2.0.1",
        f"{path}:16: faults.2.commands.1: unknown OCPP 2.0.1 command 'RemoteStartTransaction'; "
        "did you mean 'RequestStartTransaction'?",
        f"{path}:17: faults.3.commands.0: unknown command 'ReserveNo'; did you mean 'ReserveNow'?",
        f"{path}:18: faults.4.count: 5 bookings asked for, but only 4 drivers book (one each)",
        f"{path}:21: expect.metrics.sesions: unknown metric 'sesions'; did you mean 'sessions'?",
    ]
    assert [(m.line, m.field) for m in err.value.mistakes][:2] == [
        (5, "fleet.radius"),
        (8, "drivers.no_show_rat"),
    ]


def test_the_commands_a_fault_may_refuse_are_those_the_charger_answers() -> None:
    from chargeshare.services.clock import ManualClock
    from simulators.charger import VirtualCharger
    from simulators.scenario import _commands_of
    from tests.conftest import T0

    for protocol in (V16, V201):
        charger = VirtualCharger("CP-1", "ws://unused", ManualClock(T0), [7_400], protocol=protocol)
        assert set(charger.csms_handlers()) == _commands_of(protocol)
    assert "RemoteStartTransaction" in _commands_of(V16) and "GetVariables" in _commands_of(V201)


def test_cli_validate_reports_each_file_and_a_summary(tmp_path: Path) -> None:
    (tmp_path / "many.yaml").write_text(MISTAKES)
    (tmp_path / "brackets.yaml").write_text(
        "name: brackets\nfleet: {chargers: 1, '[red]': 2}\ndrivers: {count: 1}\nfaults:\n"
        "  - {at_minute: 1, action: reject_commands, commands: [reset]}\n"
    )
    (tmp_path / "fine.yaml").write_text("name: fine\nfleet: {chargers: 2}\ndrivers: {count: 1}\n")
    result = runner.invoke(app, ["scenario", "validate", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert f"ok {tmp_path / 'fine.yaml'} (fine)" in result.stdout
    assert result.stdout.strip().endswith("3 files: 1 ok, 2 invalid")
    invalid = [line for line in result.stderr.splitlines() if line.startswith("invalid: ")]
    assert len(invalid) == 9 + 2, invalid
    assert any("faults.0.commands.0: unknown command 'reset'; did you mean 'Reset'?" in x for x in invalid)
    # Rich markup would take "[red]" for a style and drop it: the message keeps it.
    assert any("fleet.[red]: unknown key '[red]' (one of " in line for line in invalid), invalid
    quiet = runner.invoke(app, ["scenario", "validate", str(tmp_path / "fine.yaml"), "-q"])
    assert quiet.exit_code == 0 and quiet.stdout.strip() == "1 file: 1 ok, 0 invalid"


def test_cli_validate_as_json(tmp_path: Path) -> None:
    (tmp_path / "a-many.yaml").write_text(MISTAKES)
    (tmp_path / "b-fine.yaml").write_text("name: fine\nfleet: {chargers: 2}\ndrivers: {count: 1}\n")
    (tmp_path / "c-broken.yaml").write_text("name: [unclosed\n")
    result = runner.invoke(app, ["scenario", "validate", str(tmp_path), "--json", "-"])
    assert result.exit_code == 2
    many, fine, broken = json.loads(result.stdout)
    assert (many["ok"], len(many["mistakes"])) == (False, 9)
    assert many["mistakes"][0] == {
        "line": 5,
        "field": "fleet.radius",
        "message": "unknown key 'radius'; did you mean 'radius_m'?",
    }
    assert fine == {"file": str(tmp_path / "b-fine.yaml"), "ok": True, "name": "fine", "mistakes": []}
    assert not broken["ok"] and "not valid YAML" in broken["mistakes"][0]["message"]
    assert "3 files: 1 ok, 2 invalid" in result.stderr  # for people: on stderr, as the JSON is on stdout


def test_protocols_and_wire_faults_load_as_written(tmp_path: Path) -> None:
    path = tmp_path / "wire.yaml"
    path.write_text(
        "name: wire\nfleet: {chargers: 6, protocols: [1.6, '2.0.1', 2.1]}\ndrivers: {count: 1}\nfaults:\n"
        "  - {at_minute: 1, action: reject_commands, count: 2, commands: [Reset], minutes: 5,\n"
        "     protocol: '2.0.1'}\n"
        "  - {at_minute: 2, action: delay_responses, count: 1, seconds: 30}\n"
        "  - {at_minute: 3, action: drop_frames, count: 1, percent: 12.5}\n"
    )
    params = load(path).params
    assert params.fleet.protocols == (V16, V201, V21)  # YAML's numbers 1.6 and 2.1 read as versions
    assert [params.fleet.protocol_of(i) for i in range(4)] == [V16, V201, V21, V16]
    reject, delay, drop = params.faults
    assert (reject.commands, reject.duration_s, reject.protocol) == (("Reset",), 300, V201)
    assert (delay.delay_s, delay.skew_s) == (30.0, 0.0)
    assert drop.percent == 12.5


def test_the_smart_charging_keys_load_as_written(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    path = tmp_path / "smart.yaml"
    path.write_text(
        "name: smart\nengine: des\nstart: '2026-06-01T21:30:00+01:00'\n"
        "fleet: {chargers: 4, smart_charge_points: true, dsr_chargers: 2}\n"
        "drivers: {count: 10, override_rate: 0.3}\n"
    )
    loaded = load(path)
    assert loaded.engine == "des"
    assert loaded.params.start == datetime(2026, 6, 1, 20, 30, tzinfo=UTC)
    assert (loaded.params.fleet.smart_charge_points, loaded.params.fleet.dsr_chargers) == (True, 2)
    assert loaded.params.behaviour.override_rate == 0.3
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: plain\nfleet: {chargers: 1}\ndrivers: {count: 1}\n")
    assert load(plain).engine == "live" and not load(plain).params.fleet.smart_charge_points


def test_the_new_faults_load_as_written(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text(
        "name: faults\nfleet: {chargers: 2, allow_unknown_chargers: true}\ndrivers: {count: 3}\nfaults:\n"
        "  - {at_minute: 1, action: provider_slow, minutes: 10, seconds: 45}\n"
        "  - {at_minute: 2, action: spoofed_charger, count: 2, spoofer: unregistered, protocol: 1.6}\n"
        "  - {at_minute: 3, action: racing_cancels, count: 3}\n"
        "  - {at_minute: 4, action: racing_payouts, count: 6}\n"
    )
    params = load(path).params
    assert params.allow_unknown_chargers
    slow, spoof, cancels, payouts = params.faults
    assert (slow.latency_s, slow.duration_s, slow.delay_s) == (45.0, 600, 0.0)
    assert (spoof.spoofer, spoof.count, spoof.protocol) == ("unregistered", 2, V16)
    assert (cancels.count, cancels.spoofer, payouts.count) == (3, "fleet", 6)


def test_a_clock_jump_loads_as_written_and_needs_seconds(tmp_path: Path) -> None:
    path = tmp_path / "jump.yaml"
    head = "name: jump\nfleet: {chargers: 2}\ndrivers: {count: 1}\nfaults:\n"
    path.write_text(head + "  - {at_minute: 30, action: clock_jump, count: 2, seconds: -3600}\n")
    (jump,) = load(path).params.faults
    assert (jump.action, jump.count, jump.skew_s, jump.delay_s) == ("clock_jump", 2, -3600.0, 0.0)
    path.write_text(head + "  - {at_minute: 30, action: clock_jump}\n")
    with pytest.raises(ScenarioError, match=r":5: faults.0: clock_jump needs seconds"):
        load(path)


@pytest.mark.slow
def test_cli_validate_and_run_with_junit(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: Bad Name\nfleet: {chargers: 1}\ndrivers: {count: 1}\n")
    result = runner.invoke(app, ["scenario", "validate", str(bad)])
    assert result.exit_code == 2 and f"{bad}:1: name" in result.output
    # one bad file means nothing runs
    result = runner.invoke(
        app, ["scenario", "run", str(ROOT / "scenarios" / "race-same-charger.yaml"), str(bad)]
    )
    assert result.exit_code == 2 and "PASS" not in result.output
    junit = tmp_path / "out.xml"
    result = runner.invoke(
        app, ["scenario", "run", str(ROOT / "scenarios" / "race-same-charger.yaml"), "--junit", str(junit)]
    )
    assert result.exit_code == 0, result.output
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.iter("testcase")] == ["race-same-charger"]
    listing = runner.invoke(app, ["scenario", "list", str(ROOT / "scenarios")])
    assert listing.exit_code == 0 and "host-cancels" in listing.output


def test_scenario_list_as_json() -> None:
    listing = runner.invoke(app, ["scenario", "list", str(ROOT / "scenarios"), "--json", "-"])
    assert listing.exit_code == 0, listing.output
    rows = json.loads(listing.stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["host-cancels"]["chargers"] == 6 and by_name["host-cancels"]["duration_s"] == 5400
    columns = {"name", "file", "chargers", "drivers", "duration_s", "description"}
    assert set(by_name["host-cancels"]) == columns


@pytest.mark.postgres
def test_a_scenario_runs_on_postgres(postgres_url: str) -> None:
    result = runner.invoke(
        app,
        [
            "scenario",
            "run",
            str(ROOT / "scenarios" / "race-same-charger.yaml"),
            "--backend",
            "postgres",
            "--postgres-url",
            postgres_url,
        ],
    )
    assert result.exit_code == 0, result.output


def test_the_metric_names_are_the_summarys() -> None:
    from simulators.des.engine import DesParams, run_des
    from simulators.scenario import SUMMARY_BREAKDOWNS, SUMMARY_METRICS

    summary = run_des(DesParams(chargers=2, drivers=4, duration_s=1_800, seed=1)).report.summary
    assert set(summary) == SUMMARY_METRICS
    assert {k for k, v in summary.items() if isinstance(v, dict)} == set(SUMMARY_BREAKDOWNS)


def test_the_published_schema_is_the_one_in_use() -> None:
    import json

    from simulators.scenario import SCHEMA

    assert json.loads((ROOT / "docs" / "scenario.schema.json").read_text()) == SCHEMA
