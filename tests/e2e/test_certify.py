"""The certifier certified: our virtual charger passes every applicable case in each version, and
each deliberately faulty variant fails exactly the cases written to catch it (mutation testing).

Every certification runs end to end (its own endpoint, a real WebSocket, the whole case list); the
twenty-four runs go concurrently, once per module, and the parametrised tests judge one report each."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from chargeshare.certify.context import Settings
from chargeshare.certify.model import CertificationReport, Profile, Verdict
from chargeshare.ocpp import V16, V21, V201, OcppVersion
from chargeshare.ocpp.connection import Handler
from simulators.certify_virtual import certify_virtual
from simulators.charger import VirtualCharger
from simulators.faulty_chargers import CAUGHT_BY, VARIANTS

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

PROTOCOLS = (V16, V201, V21)  # 2.1 runs the 2.0.1 cases
# A virtual charger answers at once: short waits keep a failing case short.
FAST = Settings(event_timeout_s=3.0, quiet_s=0.6, settle_s=0.05)
# Not applicable on our virtual charger: it reads a card only once a car is plugged in, and refuses
# a remote start with no car plugged in, as OCPP 1.6 allows.
NOT_APPLICABLE = {V16: {"TC_004", "TC_011"}, V201: set(), V21: set()}
Runs = dict[tuple[OcppVersion, str | None], CertificationReport]
UNFINISHED = "unfinished"
NOBODY = "nobody at the charger"


class Unfinished(VirtualCharger):
    """Knows neither UnlockConnector (Core) nor TriggerMessage (Remote Trigger, which it claims)."""

    def csms_handlers(self) -> dict[str, Handler]:
        handlers = super().csms_handlers()
        del handlers["UnlockConnector"], handlers["TriggerMessage"]
        return handlers


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def reports() -> Runs:
    keys = [(p, v) for p in PROTOCOLS for v in (None, *sorted(VARIANTS))]
    done = await asyncio.gather(
        *(
            # The mutants connect without a password: what they get wrong is not authentication.
            certify_virtual(
                p,
                v,
                settings=FAST,
                clock_factor=60,
                cp_id=f"CERT-{i}",
                password=None if v else "good-charger-password",
            )
            for i, (p, v) in enumerate(keys)
        )
    )
    runs = dict(zip(keys, done, strict=True))
    runs[(V16, UNFINISHED)] = await certify_virtual(
        V16, settings=FAST, clock_factor=60, cp_id="CERT-U", password=None, charger=Unfinished
    )
    runs[(V16, NOBODY)] = await certify_virtual(
        V16,
        settings=FAST,
        clock_factor=60,
        cp_id="CERT-N",
        password=None,
        profiles={Profile.CORE},
        nobody_there=True,
    )
    return runs


def failed(report: CertificationReport) -> set[str]:
    return {r.case_id for r in report.results if r.verdict in (Verdict.FAIL, Verdict.ERROR)}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_our_virtual_charger_passes_every_applicable_case(reports: Runs, protocol: OcppVersion) -> None:
    report = reports[(protocol, None)]
    problems = [(r.case_id, r.reason, r.excerpt[-6:]) for r in report.results if r.case_id in failed(report)]
    assert not problems
    skipped = {r.case_id for r in report.results if r.verdict is Verdict.NOT_APPLICABLE}
    assert skipped == NOT_APPLICABLE[protocol]
    assert all(r.reason for r in report.results if r.verdict is Verdict.NOT_APPLICABLE)
    passed = [r for r in report.results if r.verdict is Verdict.PASS]
    assert len(passed) == len(report.results) - len(skipped) >= 15
    assert all(r.excerpt for r in passed), "every verdict quotes the frames behind it"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
async def test_each_faulty_charger_fails_exactly_the_cases_meant_to_catch_it(
    reports: Runs, protocol: OcppVersion, variant: str
) -> None:
    report = reports[(protocol, variant)]
    assert [(r.case_id, r.reason) for r in report.results if r.verdict is Verdict.ERROR] == []
    assert failed(report) == CAUGHT_BY[protocol][variant]
    for r in report.results:
        if r.verdict is Verdict.FAIL:
            assert r.excerpt, f"{r.case_id} failed without quoting the frames that show it"


async def test_an_unsupported_command_fails_in_core_and_is_not_applicable_elsewhere(reports: Runs) -> None:
    by_id = {r.case_id: r for r in reports[(V16, UNFINISHED)].results}
    assert failed(reports[(V16, UNFINISHED)]) == {"TC_017", "TC_018"}  # the two unlock cases
    for case in ("TC_017", "TC_018"):
        assert "Core" in by_id[case].reason and "NotSupported" in by_id[case].reason
    for case in ("TC_054", "TC_055"):
        assert by_id[case].verdict is Verdict.NOT_APPLICABLE and "NotSupported" in by_id[case].reason


async def test_cases_needing_a_person_are_not_run_without_one_and_withhold_certification(
    reports: Runs,
) -> None:
    report = reports[(V16, NOBODY)]
    not_run = {r.case_id for r in report.results if r.verdict is Verdict.NOT_RUN}
    assert not_run >= {"TC_003", "TC_010"}  # local and remote start both need a car plugged in
    assert all("needs an operator" in r.reason for r in report.results if r.verdict is Verdict.NOT_RUN)
    assert not any(r.verdict is Verdict.NOT_APPLICABLE and "operator" in r.reason for r in report.results)
    assert failed(report) == set()
    assert not report.passed and set(report.core_not_run) == not_run
