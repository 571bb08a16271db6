"""Run scenarios and judge them: invariants plus each scenario's own expectations; JUnit for CI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simulators.live import LiveParams, Progress, run_live
from simulators.report import RunReport
from simulators.scenario import Scenario


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    report: RunReport
    expectations: list[tuple[bool, str]]

    @property
    def failures(self) -> list[str]:
        out = [
            f"invariant {r.name}: {'; '.join(r.failures) or 'failed'}"
            for r in self.report.invariants
            if not r.ok
        ]
        out += [f"error: {e}" for e in self.report.errors]
        out += [f"expectation: {text}" for ok, text in self.expectations if not ok]
        return out

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.scenario.name,
            "file": str(self.scenario.path),
            "ok": self.ok,
            "failures": self.failures,
            "expectations": [{"ok": ok, "check": text} for ok, text in self.expectations],
            "report": json.loads(self.report.to_json()),
        }


async def run_scenario(
    scenario: Scenario,
    *,
    seed: int | None = None,
    database_url: str | None = None,
    progress: Progress | None = None,
    trace: Path | None = None,
    processes: int | None = None,
    redis_url: str | None = None,
) -> ScenarioResult:
    params = scenario.params
    if seed is not None:
        params = replace(params, seed=seed)
    if processes is not None:
        params = replace(params, processes=processes)
    if redis_url is not None:
        params = replace(params, redis_url=redis_url)
    if database_url is not None:
        params = replace(params, database_url=database_url)
    if scenario.engine == "des":
        report = run_des_scenario(params, trace=trace)
    else:
        report = await run_live(params, progress, trace=trace)
    return ScenarioResult(scenario, report, [e.check(report.summary) for e in scenario.expectations])


def run_des_scenario(params: LiveParams, *, trace: Path | None = None) -> RunReport:
    """A scenario meant for SimPy virtual time (`engine: des`): the same checks, no sockets. The
    file's backend is the DES engine's own (one process, an in-memory database unless one is given)."""
    from simulators.des import DesParams, run_des

    if trace is not None:
        raise ValueError("--trace records a live run: a DES scenario cannot be traced")
    return run_des(DesParams.from_live(params, database_url=params.database_url)).report


def junit_xml(results: list[ScenarioResult], suite: str = "chargeshare-scenarios") -> str:
    """One testcase per scenario; each failed invariant or expectation is a line of its failure."""
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(sum(not r.ok for r in results)),
        errors="0",
        time=f"{sum(r.report.wall_s for r in results):.3f}",
    )
    for r in results:
        case = ET.SubElement(
            root,
            "testcase",
            classname="scenarios",
            name=r.scenario.name,
            file=str(r.scenario.path),
            time=f"{r.report.wall_s:.3f}",
        )
        if not r.ok:
            failure = ET.SubElement(case, "failure", message=r.failures[0], type="ScenarioFailure")
            failure.text = "\n".join(r.failures)
        out = ET.SubElement(case, "system-out")
        out.text = json.dumps(r.report.summary, sort_keys=True)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def report_json(results: list[ScenarioResult]) -> str:
    body = {"ok": all(r.ok for r in results), "scenarios": [r.to_dict() for r in results]}
    return json.dumps(body, indent=2, sort_keys=True) + "\n"
