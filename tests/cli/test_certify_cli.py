"""`chargeshare certify --auto` end to end through the CLI, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from chargeshare.cli.app import app
from tests.cli_runner import CliRunner

runner = CliRunner()


@pytest.mark.slow
def test_certify_auto_writes_three_reports_and_exits_by_the_verdict(tmp_path: Path) -> None:
    html, xml, js = tmp_path / "r.html", tmp_path / "r.xml", tmp_path / "r.json"
    args = [
        "certify",
        "--auto",  # no --charger-id needed
        "--port",
        "0",
        "--profile",
        "remote-trigger,smart-charging",
    ]
    result = runner.invoke(app, [*args, "--html", str(html), "--junit", str(xml), "--json", str(js)])
    assert result.exit_code == 0, result.output
    assert "central system URL: ws://127.0.0.1:" in result.output and "password" in result.output
    body = json.loads(js.read_text())
    ids = [r["case_id"] for r in body["results"]]
    assert ids == ["TC_054", "TC_055", "TC_056", "TC_057", "TC_066", "TC_067"] and body["certified"]
    assert ET.parse(xml).getroot().find("testsuite").attrib["tests"] == "6"  # type: ignore[union-attr]
    page = html.read_text()
    assert all(i in page for i in ids)
    assert body["charge_point_id"] == "CERTIFY-AUTO"
    assert body["device"] == {"vendor": "ChargeShare", "model": "Virtual-1", "firmware": "chargeshare-sim"}
    assert page.index("Virtual-1") < page.index("TC_054")  # the page opens with the device under test


def test_a_charger_that_never_connects_still_gets_its_reports(tmp_path: Path) -> None:
    html, xml, js = tmp_path / "r.html", tmp_path / "r.xml", tmp_path / "r.json"
    args = ["certify", "--charger-id", "GHOST", "--port", "0", "--profile", "core", "--protocol", "1.6"]
    args += ["--connect-timeout", "0.2s", "--html", str(html), "--junit", str(xml), "--json", str(js)]
    result = runner.invoke(app, args)
    assert result.exit_code == 3 and "did not connect" in result.output
    body = json.loads(js.read_text())
    assert body["certified"] is False and body["results"]
    assert {r["verdict"] for r in body["results"]} == {"NOT RUN"}
    assert all("did not connect" in r["reason"] for r in body["results"])
    suite = ET.parse(xml).getroot().find("testsuite")
    assert suite is not None and suite.attrib["skipped"] == suite.attrib["tests"] == str(len(body["results"]))
    assert "GHOST: not certified" in html.read_text()


@pytest.mark.slow
def test_a_faulty_charger_is_not_certified(tmp_path: Path) -> None:
    args = ["certify", "--charger-id", "CLI-2", "--auto", "--port", "0", "--profile", "core", "--wait", "2s"]
    args += ["--json", "-"]  # the report alone on stdout, what people read on stderr
    result = runner.invoke(app, [*args, "--protocol", "2.0.1", "--variant", "reset-without-reboot"])
    assert result.exit_code == 1, result.output
    assert "not certified" in result.stderr and "TC_B_11" in result.stderr
    assert json.loads(result.stdout)["certified"] is False


def test_refusals_name_the_option() -> None:
    assert runner.invoke(app, ["certify"]).exit_code == 2  # whose charger? (only --auto knows)
    assert runner.invoke(app, ["certify", "--charger-id", "X", "--profile", "teleport"]).exit_code == 2
    assert (
        runner.invoke(app, ["certify", "--charger-id", "X", "--variant", "wrong-status-sequence"]).exit_code
        == 2
    )
    unreachable = runner.invoke(app, ["certify-csms", "ws://127.0.0.1:9/ocpp", "--stay", "0s"])
    assert unreachable.exit_code == 3 and "cannot certify" in unreachable.output
