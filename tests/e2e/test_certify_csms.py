"""`certify-csms` against our own backend: our virtual charger boots, heartbeats, reports status,
authorises a driver's card and charges under a real booking, and the backend passes."""

from __future__ import annotations

import pytest

from chargeshare.certify.model import Verdict
from chargeshare.services.booking import BookRequest
from simulators.certify_csms import certify_csms
from tests.conftest import add_charger
from tests.e2e.conftest import Served

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("protocol", ["1.6", "2.0.1", "2.1"])
async def test_our_backend_passes_certify_csms(served: Served, protocol: str) -> None:
    charger_id = add_charger(served.app, "CSMS-PROBE")
    driver = served.app.marketplace.add_driver("Certifier", "CERT-CARD")
    served.app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, minutes=60, max_energy_wh=30_000))
    report = await certify_csms(
        served.ws, "CSMS-PROBE", protocol=protocol, password=None, id_tag="CERT-CARD", listen_s=0.2
    )
    verdicts = {r.case_id: (r.verdict, r.reason) for r in report.results}
    # The booking's ReserveNow was decided before the charger connected: it goes out on connecting,
    # so the commands case has a command to judge, and it fits the schema.
    assert {case: v for case, (v, _) in verdicts.items() if v is not Verdict.PASS} == {}, verdicts
    with served.app.store.transaction() as tx:
        sessions = list(tx.sessions.all())
    assert len(sessions) == 1 and sessions[0].meter_stop_wh is not None  # the backend saw it all


async def test_a_refused_card_makes_the_session_case_not_applicable(served: Served) -> None:
    report = await certify_csms(
        served.ws, "STRANGER", protocol="1.6", password=None, id_tag="NOBODY", listen_s=0
    )
    by_id = {r.case_id: r for r in report.results}
    assert by_id["TC_CSMS_TRANSACTION"].verdict is Verdict.NOT_APPLICABLE
    assert "NOBODY" in by_id["TC_CSMS_TRANSACTION"].reason
    assert by_id["TC_CSMS_BOOT"].verdict is Verdict.PASS
