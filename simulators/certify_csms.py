"""The reverse direction: our virtual charger against someone else's Central System. It boots,
heartbeats, reports status, authorises a card, runs a transaction and answers whatever it is sent;
the verdicts judge only what the CSMS put on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chargeshare.certify.model import CaseResult, CertificationReport, Verdict
from chargeshare.certify.wirelog import CALL, CALLERROR, CALLRESULT, Entry, WireLog, excerpt
from chargeshare.ocpp import V16, OcppVersion
from chargeshare.ocpp.frames import RemoteProtocolError, check_payload
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.clock import Clock, SystemClock
from simulators.certify_virtual import TARGET_WH, test_car
from simulators.charger import VirtualCharger

# The CALLERROR codes that say "your frame broke the schema", in either version's spelling.
SCHEMA_ERRORS = frozenset(
    {
        "FormationViolation",
        "FormatViolation",
        "OccurenceConstraintViolation",
        "OccurrenceConstraintViolation",
        "PropertyConstraintViolation",
        "TypeConstraintViolation",
        "ProtocolError",
        "RpcFrameworkError",
    }
)


class ProbeCharger(VirtualCharger):
    """Our virtual charger with every frame it sends and receives written to a wire log."""

    def __init__(self, *args: Any, log: WireLog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log = log

    async def _send(self, text: str) -> None:
        self.log.record("out", text)
        await super()._send(text)

    async def _take(self, text: str) -> None:
        self.log.record("in", text)
        await super()._take(text)

    async def heartbeat(self) -> None:
        await self._heartbeat()

    async def authorize(self, id_tag: str) -> None:
        await self._call(*self.dialect.authorize(id_tag))


class Verdicted(Exception):
    def __init__(self, verdict: Verdict, reason: str, *evidence: Entry | None) -> None:
        super().__init__(reason)
        self.verdict, self.reason = verdict, reason
        self.evidence = [e for e in evidence if e is not None]


@dataclass(frozen=True)
class CsmsCase:
    id: str
    ref: str
    title: str
    checks: str
    body: Callable[[Probe], Awaitable[None]]


class Probe:
    """What a CSMS case works with: the charger, its wire log and the answers found there."""

    def __init__(self, charger: ProbeCharger, log: WireLog, id_tag: str, timeout_s: float) -> None:
        self.charger, self.log, self.id_tag, self.timeout_s = charger, log, id_tag, timeout_s
        self.version = charger.protocol
        self.cited: list[Entry] = []

    def ours(self, action: str, since: int) -> Entry:
        sent = self.log.calls(action, direction="out", since=since)
        if not sent:
            raise Verdicted(Verdict.ERROR, f"our {action} never went out")
        return sent[0]

    async def answer(self, call: Entry) -> Entry:
        """The CSMS's answer to one of our calls, checked against the schema of that action."""
        deadline = time.monotonic() + self.timeout_s
        while (answer := self.log.answer_to(call)) is None:
            if time.monotonic() > deadline:
                raise Verdicted(
                    Verdict.FAIL, f"no answer to {call.action} within {self.timeout_s:.0f} s", call
                )
            await asyncio.sleep(0.02)
        self.cited += [call, answer]
        if answer.kind == CALLERROR:
            raise Verdicted(Verdict.FAIL, f"{call.action} was refused with {answer.error_code}", call, answer)
        assert call.action is not None and answer.payload is not None
        try:
            check_payload(call.action, answer.payload, self.version, CALLRESULT, answer.unique_id or "-")
        except RemoteProtocolError as exc:
            raise Verdicted(
                Verdict.FAIL, f"the answer breaks the schema: {exc.description}", answer
            ) from None
        return answer

    def time_is_sane(self, answer: Entry) -> None:
        assert answer.payload is not None
        try:
            when = datetime.fromisoformat(str(answer.payload["currentTime"]))
        except ValueError:
            raise Verdicted(Verdict.FAIL, "currentTime is not an RFC 3339 time", answer) from None
        if when.tzinfo is None:
            raise Verdicted(Verdict.FAIL, "currentTime carries no time zone", answer)
        if abs((when - datetime.now(UTC)).total_seconds()) > 300:
            raise Verdicted(Verdict.FAIL, "currentTime is more than five minutes off", answer)


async def boot(p: Probe) -> None:
    answer = await p.answer(p.ours("BootNotification", 0))
    assert answer.payload is not None
    if answer.payload["status"] != "Accepted":
        raise Verdicted(Verdict.FAIL, f"BootNotification answered {answer.payload['status']}", answer)
    if int(answer.payload["interval"]) <= 0:
        raise Verdicted(Verdict.FAIL, "BootNotification gave no heartbeat interval", answer)
    p.time_is_sane(answer)


async def heartbeat(p: Probe) -> None:
    mark = p.log.mark()
    await p.charger.heartbeat()
    p.time_is_sane(await p.answer(p.ours("Heartbeat", mark)))


async def status(p: Probe) -> None:
    await p.answer(p.ours("StatusNotification", 0))


async def authorize(p: Probe) -> None:
    mark = p.log.mark()
    await p.charger.authorize(p.id_tag)
    await p.answer(p.ours("Authorize", mark))


async def transaction(p: Probe) -> None:
    mark = p.log.mark()
    c = p.charger.connectors[1]
    await p.charger.plug_in(1, p.id_tag, test_car(), TARGET_WH)
    auth = await p.answer(p.ours("Authorize", mark))
    if c.transaction is None:
        await p.charger.unplug(1)
        raise Verdicted(
            Verdict.NOT_APPLICABLE, f"the CSMS did not accept the card {p.id_tag} (give --id-tag)", auth
        )
    start_action = "StartTransaction" if p.version == V16 else "TransactionEvent"
    started = await p.answer(p.ours(start_action, mark))
    assert started.payload is not None
    if p.version == V16 and int(started.payload["transactionId"]) <= 0:
        raise Verdicted(Verdict.FAIL, "an accepted StartTransaction got no usable transactionId", started)
    meter_action = "MeterValues" if p.version == V16 else "TransactionEvent"
    deadline = time.monotonic() + p.timeout_s
    while len(p.log.calls(meter_action, direction="out", since=started.seq)) == 0:
        if time.monotonic() > deadline:
            raise Verdicted(Verdict.ERROR, "our charger sent no meter reading")
        await asyncio.sleep(0.05)
    await p.answer(p.log.calls(meter_action, direction="out", since=started.seq)[0])
    stopped_at = p.log.mark()
    await p.charger.unplug(1)
    stop_action = "StopTransaction" if p.version == V16 else "TransactionEvent"
    await p.answer(p.ours(stop_action, stopped_at))


async def malformed(p: Probe) -> None:
    mark = p.log.mark()
    await p.charger.send_unchecked("StatusNotification", {"connectorId": 1})  # required fields missing
    sent = p.ours("StatusNotification", mark)
    deadline = time.monotonic() + p.timeout_s
    while (answer := p.log.answer_to(sent)) is None:
        if time.monotonic() > deadline:
            raise Verdicted(Verdict.FAIL, "a malformed StatusNotification got no CALLERROR", sent)
        await asyncio.sleep(0.02)
    if answer.kind != CALLERROR or answer.error_code not in SCHEMA_ERRORS:
        raise Verdicted(
            Verdict.FAIL, "a malformed StatusNotification was not refused as malformed", sent, answer
        )
    p.cited += [sent, answer]
    await heartbeat(p)  # and the link carries on


async def commands(p: Probe) -> None:
    sent = [e for e in p.log.entries if e.direction == "in" and e.kind == CALL]
    if not sent:
        raise Verdicted(Verdict.NOT_APPLICABLE, "the CSMS sent no commands while we were connected")
    p.cited += sent


CSMS_CASES: tuple[CsmsCase, ...] = (
    CsmsCase(
        "TC_CSMS_BOOT",
        "OCTT TC_001_CSMS (cold boot)",
        "Boot accepted",
        "BootNotification is Accepted with a heartbeat interval and a current time within five minutes.",
        boot,
    ),
    CsmsCase(
        "TC_CSMS_HEARTBEAT",
        "OCTT TC_001_CSMS",
        "Heartbeat",
        "Heartbeat is answered with a sane time.",
        heartbeat,
    ),
    CsmsCase(
        "TC_CSMS_STATUS",
        "OCTT TC_001_CSMS",
        "Status notification",
        "StatusNotification is acknowledged.",
        status,
    ),
    CsmsCase(
        "TC_CSMS_AUTHORIZE",
        "OCTT TC_023_CSMS",
        "Authorize",
        "Authorize is answered within the schema.",
        authorize,
    ),
    CsmsCase(
        "TC_CSMS_TRANSACTION",
        "OCTT TC_003_CSMS / TC_E_02_CSMS",
        "A charging session",
        "An accepted card's start gets a transaction id; readings and the stop are acknowledged.",
        transaction,
    ),
    CsmsCase(
        "TC_CSMS_MALFORMED",
        "OCPP-J 4.2.3",
        "A malformed frame",
        "A StatusNotification missing its required "
        "fields is refused with a schema CALLERROR, and the link carries on.",
        malformed,
    ),
    CsmsCase(
        "TC_CSMS_COMMANDS",
        "OCTT CSMS command cases",
        "Commands the CSMS sends",
        "Every command the CSMS sent fits the schema (our charger answered each).",
        commands,
    ),
)


async def certify_csms(
    url: str,
    cp_id: str,
    *,
    protocol: str,
    password: str | None,
    id_tag: str,
    listen_s: float,
    timeout_s: float = 15.0,
    clock: Clock | None = None,
) -> CertificationReport:
    """Run every CSMS case in order against `url` (ws://host:port/path, the charge point id is appended)."""
    clock = clock or SystemClock()
    started_at = format_ts(clock.now())
    log = WireLog(cp_id, under_test="CSMS")
    charger = ProbeCharger(
        cp_id, url, clock, [7_400], protocol=protocol, meter_interval_s=1, password=password, log=log
    )
    results: list[CaseResult] = []
    try:
        with contextlib.suppress(RuntimeError):  # a refused boot: the boot case says why, from the frames
            await charger.start()
        for case in CSMS_CASES:
            if case.id == "TC_CSMS_COMMANDS":
                await asyncio.sleep(listen_s)
            results.append(await _run(case, Probe(charger, log, id_tag, timeout_s), log))
            if case.id == "TC_CSMS_BOOT" and results[-1].verdict is not Verdict.PASS:
                break
    finally:
        await charger.stop()
    results += [
        CaseResult(
            c.id, c.ref, c.title, "core", Verdict.ERROR, "not run: the CSMS did not accept our boot", 0.0
        )
        for c in CSMS_CASES[len(results) :]
    ]
    return CertificationReport(cp_id, protocol, "csms", started_at, results)


async def _run(case: CsmsCase, probe: Probe, log: WireLog) -> CaseResult:
    t0, mark = time.monotonic(), log.mark()

    def result(verdict: Verdict, reason: str, evidence: list[Entry]) -> CaseResult:
        return CaseResult(
            case.id,
            case.ref,
            case.title,
            "core",
            verdict,
            reason,
            round(time.monotonic() - t0, 3),
            excerpt(evidence or log.since(mark)),
        )

    try:
        await asyncio.wait_for(case.body(probe), probe.timeout_s * 3)
    except Verdicted as v:
        return result(v.verdict, v.reason, probe.cited + v.evidence)
    except TimeoutError:
        return result(Verdict.ERROR, "did not finish in time", [])
    except Exception as exc:  # our bug or a lost link: say so rather than hide the other verdicts
        return result(Verdict.ERROR, f"{type(exc).__name__}: {exc}", [])
    bad = _schema_breaks(log.since(mark), probe.version)
    if bad:
        return result(Verdict.FAIL, bad[0][1], [e for e, _ in bad])
    return result(Verdict.PASS, case.checks, probe.cited)


def _schema_breaks(entries: list[Entry], version: OcppVersion) -> list[tuple[Entry, str]]:
    """CSMS frames that are not OCPP: unreadable, or a command or answer outside the schema."""
    found = []
    for e in entries:
        if e.direction != "in":
            continue
        if e.kind is None:
            found.append((e, "the CSMS sent a frame that is not OCPP-J"))
        elif e.kind in (CALL, CALLRESULT) and e.action is not None and e.payload is not None:
            try:
                check_payload(e.action, e.payload, version, e.kind, e.unique_id or "-")
            except RemoteProtocolError as exc:
                found.append(
                    (e, f"the CSMS's {e.action} breaks the OCPP {version} schema: {exc.description}")
                )
    return found
