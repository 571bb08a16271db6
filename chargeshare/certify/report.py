"""Certification reports: HTML for a person, JUnit for CI, JSON for tools (and back again)."""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from chargeshare.certify.model import CaseResult, CertificationReport, Verdict

_COLOURS = {
    Verdict.PASS: "#1a7f37",
    Verdict.FAIL: "#cf222e",
    Verdict.ERROR: "#9a6700",
    Verdict.NOT_APPLICABLE: "#57606a",
    Verdict.NOT_RUN: "#8250df",
}


def summary(report: CertificationReport) -> dict[str, int]:
    return {v.value: report.count(v) for v in Verdict}


def to_json(report: CertificationReport) -> str:
    body: dict[str, Any] = asdict(report)
    body["summary"] = summary(report)
    body["certified"] = report.passed
    return json.dumps(body, indent=2)


def from_json(text: str) -> CertificationReport:
    body = json.loads(text)
    results = [CaseResult(**{**r, "verdict": Verdict(r["verdict"])}) for r in body["results"]]
    return CertificationReport(
        body["charge_point_id"],
        body["protocol"],
        body["role"],
        body["started_at"],
        results,
        finished_at=body.get("finished_at", ""),
        device=body.get("device", {}),
        tool_version=body.get("tool_version", ""),
    )


def to_junit(report: CertificationReport) -> str:
    suite = ET.Element(
        "testsuite",
        name=f"certify {report.role} {report.charge_point_id} OCPP {report.protocol}",
        tests=str(len(report.results)),
        failures=str(report.count(Verdict.FAIL)),
        errors=str(report.count(Verdict.ERROR)),
        skipped=str(report.count(Verdict.NOT_APPLICABLE) + report.count(Verdict.NOT_RUN)),
        time=f"{sum(r.duration_s for r in report.results):.3f}",
        timestamp=report.started_at,
    )
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"certify.{r.profile}",
            name=f"{r.case_id} {r.title}",
            time=f"{r.duration_s:.3f}",
        )
        wire = "\n".join(r.excerpt)
        if r.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", message=r.reason).text = wire
        elif r.verdict is Verdict.ERROR:
            ET.SubElement(case, "error", message=r.reason).text = wire
        elif r.verdict in (Verdict.NOT_APPLICABLE, Verdict.NOT_RUN):
            ET.SubElement(case, "skipped", message=r.reason)
        else:
            ET.SubElement(case, "system-out").text = wire
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def to_html(report: CertificationReport) -> str:
    """One page that opens with the device under test, the run and a summary table; a case that
    failed or errored shows its frames, the others keep them folded."""
    e = html.escape
    verdict = "certified" if report.passed else "not certified"
    under_test = "the Central System" if report.role == "csms" else "the charger"
    device = report.device
    facts = [
        ("charge point id", report.charge_point_id),
        ("vendor", device.get("vendor", "-")),
        ("model", device.get("model", "-")),
        ("serial number", device.get("serial", "-")),
        ("firmware", device.get("firmware", "-")),
        ("OCPP", report.protocol or "- (never connected)"),
        ("started", report.started_at),
        ("finished", report.finished_at or "-"),
        ("certifier", f"chargeshare {report.tool_version}" if report.tool_version else "chargeshare"),
    ]
    head = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
    counts = "".join(
        f'<tr><td style="color:{_COLOURS[v]}">{e(v.value)}</td><td>{n}</td></tr>'
        for v, n in ((v, report.count(v)) for v in Verdict)
    )
    not_run = (
        f"<p><strong>Core cases not run:</strong> {e(', '.join(report.core_not_run))}</p>"
        if report.core_not_run
        else ""
    )
    rows = []
    for r in report.results:
        colour = _COLOURS[r.verdict]
        wire = e("\n".join(r.excerpt)) or "(no frames)"
        opened = " open" if r.verdict in (Verdict.FAIL, Verdict.ERROR) else ""
        rows.append(
            f'<section id="{e(r.case_id)}"><h2>{e(r.case_id)} {e(r.title)} '
            f'<span class="verdict" style="color:{colour}">{e(r.verdict.value)}</span></h2>'
            f"<p><small>{e(r.ref)} · profile {e(r.profile)} · {r.duration_s:.1f} s</small></p>"
            f"<p>{e(r.reason)}</p><details{opened}><summary>wire log</summary><pre>{wire}</pre>"
            "</details></section>"
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Certification of {e(report.charge_point_id)}</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}pre{white-space:pre-wrap;"
        "background:#f6f8fa;padding:.5em;font-size:.8em}section{border-top:1px solid #ddd}"
        "table{border-collapse:collapse}th,td{text-align:left;padding:.1em .8em .1em 0}</style>"
        "</head><body>"
        f"<h1>{e(report.charge_point_id)}: {verdict}</h1>"
        f'<h2>Device under test ({e(under_test)})</h2><table id="device">{head}</table>'
        f'<h2>Summary</h2><table id="summary">{counts}</table>{not_run}' + "".join(rows) + "</body></html>"
    )


def write_reports(
    report: CertificationReport, *, html_path: Path | None, junit_path: Path | None, json_path: Path | None
) -> None:
    for path, render in ((html_path, to_html), (junit_path, to_junit), (json_path, to_json)):
        if path is not None:
            path.write_text(render(report), encoding="utf-8")
