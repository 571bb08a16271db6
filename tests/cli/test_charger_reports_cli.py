"""`chargeshare chargers reports | state | unmetered | security-events`: what chargers reported about
themselves, as operators read it from the database."""

from __future__ import annotations

import json
from pathlib import Path

from chargeshare.bootstrap import Config, build
from chargeshare.cli.app import app as cli
from chargeshare.ocpp import V201, csms_v201
from chargeshare.ocpp.connection import Connection
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.cli_runner import CliRunner
from tests.conftest import T0, add_charger

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def test_what_a_charger_reported_is_shown_to_the_operator(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    clock = ManualClock(T0)
    app = build(Config(database_url=url, password_hash="fast"), clock=clock)
    charger_id = add_charger(app, "CLI201")
    driver = app.marketplace.add_driver("D", "TAG-D").driver_id
    app.bookings.book(BookRequest(driver, charger_id, 1, 60, 10_000))
    ocpp = Connection(V201, csms_v201.handlers(app.charging, "CLI201", app.reports))

    def send(n: int, action: str, payload: dict[str, object]) -> list[object]:
        reply: list[object] = json.loads(ocpp.receive(json.dumps([2, str(n), action, payload])).reply or "[]")
        assert reply[0] == 3, reply
        return reply

    send(1, "FirmwareStatusNotification", {"status": "Installed", "requestId": 4})
    send(2, "NotifyChargingLimit", {"chargingLimit": {"chargingLimitSource": "SO", "isGridCritical": True}})
    send(3, "SecurityEventNotification", {"type": "SettingSystemTime", "timestamp": "2026-03-02T08:00:00Z"})
    send(
        4,
        "NotifyReport",
        {
            "requestId": 1,
            "generatedAt": "2026-03-02T09:00:00Z",
            "seqNo": 0,
            "reportData": [
                {
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                    "variableAttribute": [{"value": "300", "mutability": "ReadWrite"}],
                }
            ],
        },
    )
    started = {"transactionId": "T1", "chargingState": "Charging"}
    send(
        5,
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": "2026-03-02T09:00:00Z",
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": started,
            "idToken": {"idToken": "TAG-D", "type": "ISO14443"},
            "evse": {"id": 1, "connectorId": 1},
        },
    )
    send(
        6,
        "TransactionEvent",
        {
            "eventType": "Ended",
            "timestamp": "2026-03-02T09:30:00Z",
            "triggerReason": "EVCommunicationLost",
            "seqNo": 1,
            "transactionInfo": {"transactionId": "T1"},
        },
    )
    app.close()
    db = ["--database-url", url]

    listed = runner.invoke(cli, ["chargers", "reports", "CLI201", *db], env=WIDE)
    assert listed.exit_code == 0, listed.output
    for line in ("FirmwareStatusNotification", "Installed (request 4)", "SO limit on the whole charger"):
        assert line in listed.output
    raw = runner.invoke(
        cli, ["chargers", "reports", "CLI201", "--action", "NotifyReport", "--json", "-", *db]
    )
    assert raw.exit_code == 0, raw.output
    (line,) = json.loads(raw.stdout)
    assert line["action"] == "NotifyReport" and line["body"]["reportData"][0]["variable"]["name"] == (
        "HeartbeatInterval"
    )

    state = runner.invoke(cli, ["chargers", "state", "CLI201", *db], env=WIDE)
    assert state.exit_code == 0, state.output
    assert "Installed" in state.output and "HeartbeatInterval" in state.output
    assert "EV charging needs: none reported" in state.output
    grid = next(x for x in state.output.splitlines() if "SO" in x and "charger" in x)
    assert "yes" in grid  # grid critical
    as_json = runner.invoke(cli, ["chargers", "state", "CLI201", "--json", "-", *db])
    assert as_json.exit_code == 0, as_json.output
    reported = json.loads(as_json.stdout)
    assert reported["charge_point_id"] == "CLI201" and reported["ev_charging_needs"] == []
    (limit,) = reported["charging_limits"]
    assert (limit["source"], limit["evse_id"], limit["grid_critical"]) == ("SO", None, True)
    assert limit["since"].startswith("2026-")  # an instant in ISO 8601
    assert [(s["kind"], s["status"]) for s in reported["statuses"]] == [("firmware", "Installed")]
    assert [v["variable"] for v in reported["device_model"]] == ["HeartbeatInterval"]

    events = runner.invoke(cli, ["chargers", "security-events", "CLI201", *db], env=WIDE)
    assert events.exit_code == 0 and "SettingSystemTime" in events.output and "charger" in events.output

    unmetered = runner.invoke(cli, ["chargers", "unmetered", *db], env=WIDE)
    assert unmetered.exit_code == 0, unmetered.output
    row = next(x for x in unmetered.output.splitlines() if "CLI201" in x)
    assert row.split("│")[-2].strip() == "0"  # billed 0 Wh: no reading at all

    unknown = runner.invoke(cli, ["chargers", "state", "NOPE", *db])
    assert unknown.exit_code == 2 and "no charger" in unknown.output
