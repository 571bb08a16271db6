"""Certification reports and the wire log they quote, without a charger."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from chargeshare.certify.model import CaseResult, CertificationReport, Verdict
from chargeshare.certify.report import from_json, to_html, to_json, to_junit
from chargeshare.certify.runner import malformed
from chargeshare.certify.wirelog import CALLERROR, CALLRESULT, WireLog, excerpt
from chargeshare.ocpp import V16, V201

NASTY = 'reason with <tags> & "quotes" \u2014 and ]]> too'


def report_with(verdicts: list[Verdict]) -> CertificationReport:
    results = [
        CaseResult(
            f"TC_{i:03}",
            f"OCTT TC_{i:03}_CS",
            f"case {i} {NASTY}",
            "core",
            v,
            NASTY,
            0.25 * i,
            [f"#1 {NASTY}"],
        )
        for i, v in enumerate(verdicts)
    ]
    return CertificationReport(
        "CP<1>",
        V16,
        "charger",
        "2026-01-01T00:00:00.000Z",
        results,
        finished_at="2026-01-01T00:10:00.000Z",
        device={"vendor": NASTY, "model": "M-1", "serial": "SN-9", "firmware": "4.2"},
        tool_version="0.1.0",
    )


verdict_lists = st.lists(st.sampled_from(list(Verdict)), max_size=12)


@given(verdict_lists)
def test_junit_parses_and_counts_each_verdict(verdicts: list[Verdict]) -> None:
    root = ET.fromstring(to_junit(report_with(verdicts)))
    suite = root.find("testsuite")
    assert suite is not None
    assert int(suite.attrib["tests"]) == len(verdicts) == len(suite.findall("testcase"))
    assert (
        int(suite.attrib["failures"])
        == verdicts.count(Verdict.FAIL)
        == len(suite.findall("testcase/failure"))
    )
    assert (
        int(suite.attrib["errors"]) == verdicts.count(Verdict.ERROR) == len(suite.findall("testcase/error"))
    )
    skipped = verdicts.count(Verdict.NOT_APPLICABLE) + verdicts.count(Verdict.NOT_RUN)
    assert int(suite.attrib["skipped"]) == skipped == len(suite.findall("testcase/skipped"))
    for failure in suite.findall("testcase/failure"):
        assert failure.attrib["message"] == NASTY and NASTY in (failure.text or "")


@given(verdict_lists)
def test_json_round_trips(verdicts: list[Verdict]) -> None:
    report = report_with(verdicts)
    text = to_json(report)
    assert from_json(text) == report
    body = json.loads(text)
    assert body["summary"]["FAIL"] == verdicts.count(Verdict.FAIL)
    assert body["certified"] is all(v in (Verdict.PASS, Verdict.NOT_APPLICABLE) for v in verdicts)


def test_a_core_case_not_run_withholds_certification_and_an_optional_one_does_not() -> None:
    def result(case_id: str, profile: str, verdict: Verdict) -> CaseResult:
        return CaseResult(case_id, "ref", "title", profile, verdict, "needs an operator", 0.0)

    optional = CertificationReport(
        "CP1",
        V16,
        "charger",
        "2026-01-01T00:00:00.000Z",
        [result("TC_001", "core", Verdict.PASS), result("TC_047", "reservation", Verdict.NOT_RUN)],
    )
    assert optional.passed and optional.core_not_run == []
    core = CertificationReport(
        "CP1",
        V16,
        "charger",
        optional.started_at,
        [*optional.results, result("TC_003", "core", Verdict.NOT_RUN)],
    )
    assert not core.passed and core.core_not_run == ["TC_003"]
    assert "not certified" in to_html(core)


def test_html_shows_every_case_with_its_verdict_escaped() -> None:
    verdicts = list(Verdict)
    page = to_html(report_with(verdicts))
    for i, v in enumerate(verdicts):
        assert f'id="TC_{i:03}"' in page and v.value in page
    assert "<tags>" not in page and "&lt;tags&gt;" in page
    assert "not certified" in page


def test_the_wire_log_pairs_answers_with_calls_per_direction() -> None:
    log = WireLog("CP1", clock=iter(range(100)).__next__)
    log.record("in", '[2,"1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]')
    log.record("out", '[2,"1","Reset",{"type":"Hard"}]')  # the same id the other way is another call
    log.record("out", '[3,"1",{"status":"Accepted","currentTime":"2026-01-01T00:00:00Z","interval":300}]')
    log.record("in", '[4,"1","NotSupported","no",{}]')
    log.record("in", "not json at all")
    boot, reset = log.calls("BootNotification")[0], log.calls("Reset", direction="out")[0]
    boot_answer, reset_answer = log.answer_to(boot), log.answer_to(reset)
    assert (
        boot_answer is not None
        and boot_answer.kind == CALLRESULT
        and boot_answer.action == "BootNotification"
    )
    assert (
        reset_answer is not None
        and reset_answer.kind == CALLERROR
        and reset_answer.error_code == "NotSupported"
    )
    assert log.entries[-1].kind is None
    assert [e.seq for e, _ in malformed(log.entries, V16)] == [5]  # only the unreadable frame
    assert "charger -> CSMS" in boot.line() and "CSMS -> charger" in reset.line()


def test_a_call_outside_the_schema_is_malformed() -> None:
    log = WireLog("CP1")
    log.record("in", '[2,"9","StatusNotification",{"connectorId":1}]')
    [(entry, why)] = malformed(log.entries, V16)
    assert entry.action == "StatusNotification" and "schema" in why


def test_frames_the_backend_would_not_read_are_logged_as_not_ocpp_j() -> None:
    log = WireLog("CP1")
    deep = "[" * 20_000 + "]" * 20_000
    log.record("in", f'[2,"1","DataTransfer",{{"vendorId":"v","data":{deep}}}]')
    log.record("in", '[2,"2","DataTransfer",{"vendorId":"v","data":NaN}]')
    assert [e.kind for e in log.entries] == [None, None]
    assert [e.seq for e, _ in malformed(log.entries, V201)] == [1, 2]


def test_long_excerpts_keep_both_ends() -> None:
    log = WireLog("CP1")
    for i in range(100):
        log.record("in", f'[2,"{i}","Heartbeat",{{}}]')
    lines = excerpt(log.entries, limit=10)
    assert len(lines) == 11 and '"0"' in lines[0] and '"99"' in lines[-1] and "90 frames omitted" in lines[5]


def test_html_opens_with_the_device_and_a_summary_and_shows_failed_frames() -> None:
    page = to_html(report_with([Verdict.PASS, Verdict.FAIL, Verdict.NOT_RUN]))
    device, summary_at = page.index('id="device"'), page.index('id="summary"')
    assert device < summary_at < page.index('id="TC_000"')
    head = page[device:summary_at]
    assert "&lt;tags&gt;" in head and "M-1" in head and "SN-9" in head and "4.2" in head
    assert "2026-01-01T00:10:00.000Z" in head and "chargeshare 0.1.0" in head
    passed, failed = page.split('id="TC_001"')
    assert "<details open>" not in passed and "<details open>" in failed.split('id="TC_002"')[0]
    assert "Core cases not run:</strong> TC_002" in page


def test_the_device_is_read_from_either_versions_boot() -> None:
    from chargeshare.ocpp.boot_info import device_of

    v16 = {"chargePointVendor": "V", "chargePointModel": "M", "firmwareVersion": "1.0"}
    assert device_of(v16) == {"vendor": "V", "model": "M", "firmware": "1.0"}
    v201 = {"reason": "PowerUp", "chargingStation": {"vendorName": "V", "model": "M", "serialNumber": "S"}}
    assert device_of(v201) == {"vendor": "V", "model": "M", "serial": "S"}
