"""The grid buyer's settlement through the API, for operators: a month's statement of V2G export
credits, a payment refused before the month is over or for any amount but the total, recorded
once (again: the same answer, nothing written), and the settlements listed."""

from __future__ import annotations

from tests.api.world import client, world
from tests.api_helpers import _caller
from tests.services.test_export_payouts import exported
from tests.services.test_grid_settlement import to_april

PAY = "/admin/grid-buyer/statements/2026-03/payment"


async def test_an_operator_reads_the_statement_and_records_its_payment_once() -> None:
    with world() as w:
        exported(w.app, w.clock)  # 3,333 Wh at 25p per kWh: 83p, in March
        admin = w.admin.headers
        async with client(w.app) as http:
            open_month = (await http.get("/admin/grid-buyer/statements/2026-03", headers=admin)).json()
            assert (open_month["total"], open_month["over"], open_month["settlement"]) == (83, False, None)
            (line,) = open_month["lines"]
            assert (line["exported_wh"], line["price_per_kwh"], line["amount"]) == (3_333, 25, 83)
            early = await http.post(PAY, json={"amount": 83}, headers=admin)
            assert early.status_code == 400 and "2026-03 is not over yet" in early.text, early.text
            to_april(w.clock)
            admin = _caller(w.app, w.admin.account_id).headers  # signed in again, a month on
            wrong = await http.post(PAY, json={"amount": 84}, headers=admin)
            assert wrong.status_code == 400, wrong.text
            assert wrong.json()["error"] == "invalid_field"
            assert "the statement for 2026-03 is 83p; a payment of 84p does not settle it" in wrong.text
            paid = await http.post(PAY, json={"amount": 83}, headers=admin)
            assert paid.status_code == 200, paid.text
            settlement = paid.json()["settlement"]
            assert paid.json()["recorded_now"] is True
            assert (settlement["amount"], settlement["exports"], settlement["recorded_by"]) == (
                83,
                1,
                w.admin.account_id,
            )
            again = await http.post(PAY, json={"amount": 83}, headers=admin)
            assert again.status_code == 200 and again.json() == {
                "recorded_now": False,
                "settlement": settlement,
            }
            listed = await http.get("/admin/grid-buyer/settlements", headers=admin)
            assert listed.json() == [settlement]
            closed = (await http.get("/admin/grid-buyer/statements/2026-03", headers=admin)).json()
            assert closed["over"] is True and closed["settlement"] == settlement
            assert (closed["opening"], closed["received"], closed["closing"], closed["reconciles"]) == (
                0,
                0,
                83,
                True,
            )
            april = (await http.get("/admin/grid-buyer/statements/2026-04", headers=admin)).json()
            assert (april["opening"], april["total"], april["received"], april["closing"]) == (83, 0, 83, 0)
            driver = _caller(w.app, w.mine.driver.account_id).headers
            assert (await http.post(PAY, json={"amount": 83}, headers=driver)).status_code == 403
            bad = await http.get("/admin/grid-buyer/statements/2026-3", headers=admin)
            assert bad.status_code == 422
            zero = await http.post(PAY, json={"amount": 0}, headers=admin)
            assert zero.status_code == 422
