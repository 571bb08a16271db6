"""Run cases in order against one connected charger, each within its time limit, and turn what the
wire log shows into verdicts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chargeshare import __version__
from chargeshare.certify.context import CaseContext, LinkLost, Settings
from chargeshare.certify.model import (
    PROFILE_OF_OCPP16_NAME,
    Case,
    CaseFailed,
    CaseResult,
    CertificationReport,
    NotApplicable,
    NotRun,
    Profile,
    Verdict,
)
from chargeshare.certify.operator import Operator
from chargeshare.certify.wirelog import CALL, CALLRESULT, Entry, WireLog, excerpt
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.ocpp import V16, OcppVersion
from chargeshare.ocpp.boot_info import device_of
from chargeshare.ocpp.frames import RemoteProtocolError, check_payload
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.clock import Clock


def malformed(entries: list[Entry], version: OcppVersion) -> list[tuple[Entry, str]]:
    """Calls from the party under test that are not OCPP: unreadable, or outside the schema. Any of
    them fails the case it appears in, whatever else the case checks."""
    found = []
    for e in entries:
        if e.direction != "in":
            continue
        if e.kind is None:
            found.append((e, "the charger sent a frame that is not OCPP-J"))
        elif e.kind == CALL and e.action is not None and e.payload is not None:
            try:
                check_payload(e.action, e.payload, version, CALL, e.unique_id or "-")
            except RemoteProtocolError as exc:
                found.append(
                    (e, f"the charger's {e.action} breaks the OCPP {version} schema: {exc.description}")
                )
    return found


@dataclass
class Progress:
    """Hooks for a live view; the defaults do nothing."""

    case_started: Callable[[Case], None] = lambda _case: None
    case_finished: Callable[[Case, CaseResult], None] = lambda _case, _result: None


@dataclass
class Certifier:
    registry: ChargerRegistry
    cp_id: str
    log: WireLog
    operator: Operator
    clock: Clock
    settings: Settings = field(default_factory=Settings)
    case_timeout_s: float = 180.0
    progress: Progress = field(default_factory=Progress)
    declared: dict[str, str] = field(default_factory=dict)  # see CaseContext.declared

    async def wait_for_charger(self, timeout_s: float) -> OcppVersion:
        """Wait for the charger to connect and boot; returns the OCPP version it speaks."""
        deadline = time.monotonic() + timeout_s
        while not (self.cp_id in self.registry.links and self.log.calls("BootNotification")):
            if time.monotonic() > deadline:
                raise LinkLost(f"{self.cp_id} did not connect and boot within {timeout_s:.0f} s")
            await asyncio.sleep(0.05)
        return self.registry.links[self.cp_id].version

    async def run(self, cases: Sequence[Case], version: OcppVersion) -> CertificationReport:
        started_at = format_ts(self.clock.now())
        cases = [c for c in cases if version in c.versions]
        supported, evidence = await self._profiles(version)
        results = []
        for case in cases:
            self.progress.case_started(case)
            result = await self._run_one(case, version, supported, evidence)
            self.progress.case_finished(case, result)
            results.append(result)
        return CertificationReport(
            self.cp_id,
            version,
            "charger",
            started_at,
            results,
            finished_at=format_ts(self.clock.now()),
            device=self.device(),
            tool_version=__version__,
        )

    def device(self) -> dict[str, str]:
        """The device under test, from its latest BootNotification (empty if it never booted)."""
        boots = self.log.calls("BootNotification")
        return device_of(boots[-1].payload or {}) if boots else {}

    def never_connected(self, cases: Sequence[Case], why: str) -> CertificationReport:
        """The report of a run whose charger never came: every case NOT RUN, saying why."""
        now = format_ts(self.clock.now())
        results = [
            CaseResult(c.id, c.ref, c.title, c.profile.value, Verdict.NOT_RUN, why, 0.0) for c in cases
        ]
        return CertificationReport(
            self.cp_id, "", "charger", now, results, finished_at=now, tool_version=__version__
        )

    async def _profiles(self, version: OcppVersion) -> tuple[set[Profile] | None, list[Entry]]:
        """The feature profiles a 1.6 charger declares (None: it does not say, so all are tried)."""
        if version != V16:
            return None, []
        mark = self.log.mark()
        await self.registry.call(self.cp_id, "GetConfiguration", {"key": ["SupportedFeatureProfiles"]})
        for e in self.log.since(mark):
            if e.kind == CALLRESULT and e.action == "GetConfiguration" and e.payload is not None:
                for item in e.payload.get("configurationKey", []):
                    if item.get("key") == "SupportedFeatureProfiles" and item.get("value"):
                        names = [n.strip() for n in str(item["value"]).split(",")]
                        return {
                            PROFILE_OF_OCPP16_NAME[n] for n in names if n in PROFILE_OF_OCPP16_NAME
                        }, self.log.since(mark)
        return None, []

    async def _run_one(
        self, case: Case, version: OcppVersion, supported: set[Profile] | None, evidence: list[Entry]
    ) -> CaseResult:
        t0 = time.monotonic()

        def result(verdict: Verdict, reason: str, entries: list[Entry]) -> CaseResult:
            return CaseResult(
                case.id,
                case.ref,
                case.title,
                case.profile.value,
                verdict,
                reason,
                round(time.monotonic() - t0, 3),
                excerpt(entries),
            )

        if supported is not None and case.profile not in supported:
            return result(
                Verdict.NOT_APPLICABLE,
                f"the charger does not list the {case.profile.value} profile in SupportedFeatureProfiles",
                evidence,
            )
        ctx = CaseContext(
            case,
            registry=self.registry,
            cp_id=self.cp_id,
            version=version,
            log=self.log,
            operator=self.operator,
            clock=self.clock,
            settings=self.settings,
            declared=self.declared,
        )
        try:
            await ctx.connected()
            await asyncio.wait_for(case.body(ctx), self.case_timeout_s)
        except CaseFailed as exc:
            await ctx.restore()
            return result(Verdict.FAIL, exc.reason, ctx.cited or ctx.window())
        except NotApplicable as exc:
            await ctx.restore()
            return result(Verdict.NOT_APPLICABLE, exc.reason, ctx.cited)
        except NotRun as exc:
            await ctx.restore()
            return result(Verdict.NOT_RUN, exc.reason, ctx.cited)
        except TimeoutError:
            await ctx.restore()
            return result(Verdict.ERROR, f"did not finish within {self.case_timeout_s:.0f} s", ctx.window())
        except LinkLost as exc:
            return result(Verdict.ERROR, str(exc), ctx.window())
        except Exception as exc:  # a bug in a case must not hide the others' verdicts
            await ctx.restore()
            return result(Verdict.ERROR, f"{type(exc).__name__}: {exc}", ctx.window())
        finally:
            await self._settle()
        broken = malformed(ctx.window(), version)
        if broken:
            return result(Verdict.FAIL, broken[0][1], [e for e, _ in broken])
        return result(Verdict.PASS, case.checks, ctx.cited or ctx.window())

    async def _settle(self) -> None:
        """Let the last case's follow-up frames arrive before the next case starts watching."""
        await asyncio.sleep(self.settings.settle_s)
