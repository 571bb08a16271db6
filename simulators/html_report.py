"""Run reports people read: one self-contained HTML page per run (`simulate --html`, `replay --html`)
and one index page for a scenario suite (`scenario run --html`).

A page holds everything inline (styles, SVG plots, the series as JSON): no file or address outside
it, so it can be mailed or kept as a CI artifact. Every text put in it is escaped.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chargeshare.domain.money import format_gbp, format_kwh
from chargeshare.services.invariants import InvariantResult
from simulators.plots import FaultWindow, Marks, svg_charts
from simulators.report import RunReport
from simulators.timeline import Timeline

# Beyond this many chargers the table shows the first ones by id and says how many it left out.
MAX_CHARGER_ROWS = 500
MAX_FAILURES_SHOWN = 20

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:62em;color:#222;padding:0 1em}"
    "table{border-collapse:collapse;margin:.5em 0 1.2em}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    ".pass{color:#17692b;font-weight:bold}.fail{color:#b00020;font-weight:bold}"
    ".verdict{font-size:1.3em}figure{margin:0 0 .8em}small{color:#555}"
    "section.scenario{border-top:2px solid #999;margin-top:2em}ul.failures{margin:.2em 0;padding-left:1.2em}"
)


@dataclass(frozen=True)
class RunPage:
    """What one run's report shows; `extra_checks` are checks beside the invariants (a replay's
    charger checks), `notes` lines worth a reader's eye (a replay's divergences)."""

    title: str
    report: RunReport
    timeline: Timeline
    marks: Marks = field(default_factory=Marks)
    expectations: Sequence[tuple[bool, str]] = ()
    extra_checks: Sequence[InvariantResult] = ()
    notes: Sequence[str] = ()
    lead: str = ""  # one line under the title: what was run

    @property
    def ok(self) -> bool:
        return (
            self.report.ok and all(ok for ok, _ in self.expectations) and all(c.ok for c in self.extra_checks)
        )


def run_html(page: RunPage) -> str:
    """One run's self-contained page."""
    return _document(page.title, _run_body(page, heading="h1", prefix=""))


@dataclass(frozen=True)
class IndexEntry:
    name: str
    file: str
    page: RunPage


def index_html(title: str, entries: Sequence[IndexEntry]) -> str:
    """A scenario suite's page: the verdict and expectations of each at the top, each linking to its
    own section (the run's full report) further down."""
    e = html.escape
    passed = sum(x.page.ok for x in entries)
    anchors = _anchors([x.name for x in entries])
    rows = []
    for x, anchor in zip(entries, anchors, strict=True):
        expectations = (
            "".join(f"<li>{_verdict(ok)} {e(text)}</li>" for ok, text in x.page.expectations)
            or "<li><small>none</small></li>"
        )
        failed = [r for r in x.page.report.invariants if not r.ok]
        invariants = (
            f'<span class="fail">{len(failed)} of {len(x.page.report.invariants)} failed</span>'
            if failed
            else f"all {len(x.page.report.invariants)} hold"
        )
        rows.append(
            f'<tr data-scenario="{e(x.name)}"><td><a href="#{anchor}">{e(x.name)}</a><br>'
            f"<small>{e(x.file)}</small></td><td>{_verdict(x.page.ok)}</td>"
            f'<td><ul class="failures">{expectations}</ul></td><td>{invariants}</td>'
            f'<td class="n">{x.page.report.wall_s:.1f} s</td></tr>'
        )
    table = (
        '<table id="scenarios"><thead><tr><th>scenario</th><th>verdict</th><th>expectations</th>'
        "<th>invariants</th><th>wall time</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
    sections = "".join(
        f'<section class="scenario" id="{anchor}">'
        + _run_body(x.page, heading="h2", prefix=f"{anchor}-")
        + '<p><a href="#scenarios">back to the index</a></p></section>'
        for x, anchor in zip(entries, anchors, strict=True)
    )
    verdict = _verdict(passed == len(entries), f"{passed} passed, {len(entries) - passed} failed")
    body = f'<h1>{e(title)}</h1><p class="verdict">{verdict}</p>{table}{sections}'
    return _document(title, body)


def _document(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head>\n'
        f"<body>\n{body}\n</body></html>\n"
    )


def _verdict(ok: bool, text: str | None = None) -> str:
    word = text or ("PASS" if ok else "FAIL")
    return f'<span class="{"pass" if ok else "fail"}">{html.escape(word)}</span>'


def _anchors(names: Iterable[str]) -> list[str]:
    """An id per name, made of letters, digits and dashes only, unique on the page."""
    out: list[str] = []
    for name in names:
        base = "scenario-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "unnamed")
        anchor, n = base, 1
        while anchor in out:
            n += 1
            anchor = f"{base}-{n}"
        out.append(anchor)
    return out


def _run_body(page: RunPage, *, heading: str, prefix: str) -> str:
    e = html.escape
    sub = "h3" if heading == "h2" else "h2"
    r = page.report
    marks = page.marks
    parts = [
        f"<{heading}>{e(page.title)}</{heading}>",
        f"<p>{e(page.lead)}</p>" if page.lead else "",
        f'<p class="verdict">{_verdict(page.ok, "all checks hold" if page.ok else "checks failed")}</p>',
        f"<{sub}>Summary</{sub}>",
        _key_values(f"{prefix}summary", "summary", summary_rows(r)),
        f"<{sub}>Parameters</{sub}>",
        _key_values(f"{prefix}params", "params", param_rows(r.params, r.overrides)),
    ]
    if page.expectations:
        rows = "".join(
            f'<tr class="expectation"><td>{_verdict(ok)}</td><td>{e(text)}</td></tr>'
            for ok, text in page.expectations
        )
        parts += [
            f"<{sub}>Expectations</{sub}>",
            f'<table id="{prefix}expectations"><tr><th>result</th><th>expectation</th></tr>{rows}</table>',
        ]
    parts += [f"<{sub}>Invariants</{sub}>", _checks(f"{prefix}invariants", "invariant", r.invariants)]
    if page.extra_checks:
        parts += [
            f"<{sub}>Charger checks</{sub}>",
            _checks(f"{prefix}charger-checks", "check", page.extra_checks),
        ]
    if r.errors:
        items = "".join(f"<li>{e(x)}</li>" for x in r.errors)
        parts += [f"<{sub}>Errors</{sub}>", f'<ul class="fail" id="{prefix}errors">{items}</ul>']
    if page.notes:
        items = "".join(f"<li>{e(x)}</li>" for x in page.notes)
        parts += [f"<{sub}>Notes</{sub}>", f"<ul>{items}</ul>"]
    parts += [f"<{sub}>Over time</{sub}>", _plots(page.timeline, marks, prefix)]
    parts += [f"<{sub}>Fault timeline</{sub}>", _faults(f"{prefix}faults", marks.faults, r.summary)]
    parts += [f"<{sub}>Chargers</{sub}>", _chargers(f"{prefix}chargers", r)]
    return "\n".join(p for p in parts if p)


def summary_rows(r: RunReport) -> list[tuple[str, str]]:
    s = r.summary
    rows = [
        ("bookings", str(s.get("bookings", 0))),
        ("bookings by status", _counts(s.get("bookings_by_status", {}))),
        ("booking conflicts (409)", str(s.get("booking_conflicts", 0))),
        ("charging sessions", str(s.get("sessions", 0))),
        ("energy delivered", format_kwh(int(s.get("energy_wh", 0)))),
        ("captured from drivers", format_gbp(int(s.get("captured_pence", 0)))),
        ("host payouts", format_gbp(int(s.get("host_payouts_pence", 0)))),
        ("platform fees (incl. VAT)", format_gbp(int(s.get("platform_fees_pence", 0)))),
        ("VAT on fees", format_gbp(int(s.get("vat_pence", 0)))),
        ("card processing (platform's cost)", format_gbp(int(s.get("processor_fees_pence", 0)))),
        ("driver outcomes", _counts(s.get("driver_outcomes", {}))),
        ("faults fired", str(s.get("faults_fired", 0))),
        ("chargers that went offline", str(s.get("chargers_went_offline", 0))),
        ("dead letters", str(s.get("dead_letters", 0))),
    ]
    if r.params.get("engine") == "replay":
        # What the drivers and the fault timeline saw is not in a trace: a replay cannot tell it.
        rows = [(k, v) for k, v in rows if k not in DRIVERS_ROWS]
    if not r.deterministic:
        rows.append(("wall time", f"{r.wall_s:.1f} s"))
    return rows


DRIVERS_ROWS = frozenset(
    {"booking conflicts (409)", "driver outcomes", "faults fired", "chargers that went offline"}
)


def param_rows(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[tuple[str, str]]:
    shown = ("engine", "chargers", "drivers", "duration_s", "seed", "speed", "city", "protocols", "processes")
    rows = []
    for name in shown:
        if name not in params:
            continue
        value = params[name]
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        if name == "duration_s":
            name, text = "simulated minutes", f"{int(value) / 60:g}"
        if name in overrides or f"{name}_s" in overrides:
            text += " (given on the command line)"
        rows.append((name, text))
    return rows


def _counts(counts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _key_values(table_id: str, kind: str, rows: Sequence[tuple[str, str]]) -> str:
    e = html.escape
    body = "".join(f'<tr><th scope="row">{e(k)}</th><td>{e(v)}</td></tr>' for k, v in rows)
    return f'<table id="{table_id}" class="{kind}">{body}</table>'


def _checks(table_id: str, what: str, results: Sequence[InvariantResult]) -> str:
    e = html.escape
    rows = []
    for r in results:
        failures = ""
        if r.failures:
            shown = "".join(f"<li>{e(f)}</li>" for f in r.failures[:MAX_FAILURES_SHOWN])
            more = len(r.failures) - MAX_FAILURES_SHOWN
            if more > 0:
                shown += f"<li>... and {more} more</li>"
            failures = f'<ul class="failures">{shown}</ul>'
        rows.append(
            f'<tr class="check" data-ok="{str(r.ok).lower()}" data-name="{e(r.name)}">'
            f"<td>{_verdict(r.ok)}</td><td>{e(r.description)}{failures}</td>"
            f'<td class="n">{r.checked}</td></tr>'
        )
    head = f"<tr><th>result</th><th>{e(what)}</th><th>checked</th></tr>"
    return f'<table id="{table_id}">{head}{"".join(rows)}</table>'


def _plots(timeline: Timeline, marks: Marks, prefix: str) -> str:
    if not timeline.samples:
        return "<p><small>No samples were taken.</small></p>"
    figures = "".join(f"<figure>{svg}</figure>" for svg in svg_charts(timeline, marks))
    legend = (
        "<p><small>Lines join samples only: a grey band is a gap no sample covers. Red bands and lines "
        "are the faults' windows as scheduled (F1, F2, ... as in the fault timeline); the dashed line is "
        "the end of the run's window, after which the run winds down.</small></p>"
    )
    # "</" cannot end the script element early once escaped this way; the JSON still reads the same.
    data = json.dumps(timeline.to_dict()).replace("</", "<\\/")
    return f'{legend}{figures}<script type="application/json" id="{prefix}series">{data}</script>'


def _faults(table_id: str, faults: Sequence[FaultWindow], summary: Mapping[str, Any]) -> str:
    e = html.escape
    if not faults:
        return "<p><small>No faults were scheduled.</small></p>"
    rows = "".join(
        f'<tr class="fault"><td>F{f.number}</td><td>{e(f.action)}</td><td class="n">{f.count}</td>'
        f'<td class="n">{f.start_s / 60:g}</td>'
        f'<td class="n">{f"{f.end_s / 60:g}" if f.duration_s else "at once"}</td></tr>'
        for f in faults
    )
    out = (
        f'<table id="{table_id}"><tr><th>fault</th><th>action</th><th>count</th><th>from minute</th>'
        f"<th>to minute</th></tr>{rows}</table>"
    )
    outcomes = {k: v for k, v in (summary.get("fault_outcomes") or {}).items() if v}
    if outcomes:
        out += "<p>Outcomes: " + e(_counts(outcomes)) + "</p>"
    return out


def _chargers(table_id: str, r: RunReport) -> str:
    e = html.escape
    if not r.chargers:
        return "<p><small>No chargers.</small></p>"
    rows = "".join(
        f'<tr class="charger"><td>{e(c.charge_point_id)}</td><td>{e(c.protocol or "-")}</td>'
        f'<td>{e(c.status)}</td><td class="n">{c.connectors}</td><td class="n">{c.max_power_w / 1000:g}</td>'
        f'<td class="n">{c.bookings}</td><td class="n">{c.sessions}</td>'
        f'<td class="n">{e(format_kwh(c.energy_wh))}</td><td class="n">{e(format_gbp(c.billed_pence))}</td>'
        f'<td class="n">{"-" if c.went_offline is None else c.went_offline}</td></tr>'
        for c in r.chargers[:MAX_CHARGER_ROWS]
    )
    head = (
        "<tr><th>charger</th><th>OCPP</th><th>status after the wind-down</th><th>connectors</th>"
        "<th>max kW</th><th>bookings</th><th>sessions</th><th>energy</th><th>billed</th>"
        "<th>went offline in the window</th></tr>"
    )
    left = len(r.chargers) - MAX_CHARGER_ROWS
    more = f"<p><small>... and {left} more chargers (by id).</small></p>" if left > 0 else ""
    return f'<table id="{table_id}">{head}{rows}</table>{more}'
