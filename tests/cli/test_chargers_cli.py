from __future__ import annotations

import json
from pathlib import Path

from chargeshare.cli.app import app
from tests.cli_runner import CliRunner

runner = CliRunner()


def test_add_list_passwd_remove(tmp_path: Path) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'cs.db'}"]
    added = runner.invoke(
        app,
        [
            "chargers",
            "add",
            "CP-9",
            "--lat",
            "51.45",
            "--lon",
            "-2.59",
            "--password",
            "sixteen-chars-ok!",
            "--host-name",
            "Hannah",
            *db,
        ],
    )
    assert added.exit_code == 0, added.output
    assert "/ocpp/CP-9" in added.output and "password sixteen-chars-ok!" in added.output
    listed = runner.invoke(app, ["chargers", "list", *db], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "CP-9" in listed.output and "registered" in listed.output
    as_json = runner.invoke(app, ["chargers", "list", "--json", "-", *db])
    assert as_json.exit_code == 0, as_json.output
    (row,) = json.loads(as_json.stdout)
    assert (row["charge_point_id"], row["status"], row["lat"]) == ("CP-9", "registered", 51.45)
    assert row["connectors"] == [
        {"connector_no": 1, "type": "type2", "max_power_w": 7400, "status": "Unavailable"}
    ]
    again = runner.invoke(app, ["chargers", "add", "CP-9", "--lat", "51", "--lon", "0", *db])
    assert again.exit_code == 2 and "error" in again.output
    short = runner.invoke(app, ["chargers", "passwd", "CP-9", "--password", "short", *db])
    assert short.exit_code == 2 and "16 to 40" in short.output
    generated = runner.invoke(app, ["chargers", "passwd", "CP-9", *db])
    assert generated.exit_code == 0 and "new password" in generated.output
    assert runner.invoke(app, ["chargers", "remove", "CP-9", *db]).exit_code == 0
    gone = runner.invoke(app, ["chargers", "remove", "CP-9", *db])
    assert gone.exit_code == 2 and "no charger" in gone.output


def test_a_charger_added_pending_is_accepted_by_boot_policy(tmp_path: Path) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'cs.db'}"]
    where = ["--lat", "51.45", "--lon", "-2.59"]
    added = runner.invoke(app, ["chargers", "add", "CP-P", *where, "--boot-policy", "Pending", *db])
    assert added.exit_code == 0, added.output

    def policy() -> str:
        listed = runner.invoke(app, ["chargers", "list", "--json", "-", *db])
        (row,) = json.loads(listed.stdout)
        return str(row["boot_policy"])

    assert policy() == "Pending"
    accepted = runner.invoke(app, ["chargers", "boot-policy", "CP-P", "Accepted", *db])
    assert accepted.exit_code == 0 and "boot policy Accepted" in accepted.output
    assert policy() == "Accepted"
    unknown = runner.invoke(app, ["chargers", "boot-policy", "NOPE", "Accepted", *db])
    assert unknown.exit_code == 2 and "no charger 'NOPE'" in unknown.output
    wrong = runner.invoke(app, ["chargers", "boot-policy", "CP-P", "Maybe", *db])
    assert wrong.exit_code == 2


def test_smart_charging_settings_shown_changed_and_kept(tmp_path: Path) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'cs.db'}"]
    added = runner.invoke(app, ["chargers", "add", "CP-S", "--lat", "51.45", "--lon", "-2.59", *db])
    assert added.exit_code == 0, added.output

    def shown(*args: str) -> dict[str, object]:
        result = runner.invoke(app, ["chargers", "smart-charging", "CP-S", *args, "--json", "-", *db])
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.stdout)
        return dict(row)

    assert shown() == {
        "charge_point_id": "CP-S",
        "randomised_delay_max_s": 600,
        "randomised_delay_override": False,
        "default_charging_hours": True,
        "demand_side_response": False,
        "configured": False,
    }
    changed = shown("--delay-max", "1200", "--no-default-hours", "--dsr")
    assert (changed["randomised_delay_max_s"], changed["default_charging_hours"]) == (1200, False)
    assert (changed["demand_side_response"], changed["configured"]) == (True, True)
    assert shown()["randomised_delay_max_s"] == 1200  # kept in the database
    too_long = runner.invoke(app, ["chargers", "smart-charging", "CP-S", "--delay-max", "1801", *db])
    assert too_long.exit_code == 2 and "less than or equal to 1800" in too_long.output
    nobody = runner.invoke(app, ["chargers", "smart-charging", "CP-NONE", *db])
    assert nobody.exit_code == 2 and "no charger 'CP-NONE'" in nobody.output
