"""V2G export rules: the credit's rounding, the export register only moving up, the lowest state
of charge seen while exporting, and the ledger entry that credits the driver."""

from __future__ import annotations

import pytest

from chargeshare.domain.errors import InvalidRequest, LedgerError
from chargeshare.domain.ledger import GRID_EXPORT_BUYER, EntryKind, driver_export_credit, export_credit_entry
from chargeshare.domain.v2g import (
    ExportRecord,
    ExportTerms,
    export_credit,
    read_export,
    settle_export,
    settle_late_export,
)
from tests.conftest import T0


def test_the_credit_is_exported_wh_times_price_rounded_down_to_the_penny() -> None:
    assert export_credit(3_000, 25) == 75
    assert export_credit(1_999, 1) == 1  # 1.999p -> 1p: never paid for energy not sent
    assert export_credit(0, 25) == 0
    with pytest.raises(InvalidRequest):
        export_credit(-1, 25)


def test_terms_refuse_a_floor_that_strands_the_driver_and_a_silly_price() -> None:
    with pytest.raises(InvalidRequest):
        ExportTerms(1, 25, 5, T0)
    with pytest.raises(InvalidRequest):
        ExportTerms(1, 1_001, 40, T0)
    with pytest.raises(InvalidRequest):
        ExportTerms(1, -1, 40, T0)


def test_the_export_register_only_moves_up_and_the_lowest_soc_is_kept_while_exporting() -> None:
    r = read_export(ExportRecord(7), 10_000, 80)
    assert (r.start_wh, r.last_wh, r.lowest_soc_pct) == (10_000, 10_000, None)  # not exporting yet
    r = read_export(r, 11_000, 70)
    r = read_export(r, 10_500, 20)  # a replayed, older reading changes nothing but the latest SoC
    assert (r.metered_wh, r.lowest_soc_pct, r.soc_pct) == (1_000, 70, 20)
    r = read_export(r, 12_000, 60)
    assert (r.metered_wh, r.lowest_soc_pct) == (2_000, 60)
    settled = settle_export(r, ExportTerms(7, 25, 40, T0))
    assert (settled.exported_wh, settled.credit) == (2_000, 50)
    assert settle_export(settled, ExportTerms(7, 99, 40, T0)) == settled
    assert read_export(settled, 20_000, 10) == settled


def test_the_export_credit_entry_balances_the_grid_buyer_against_the_driver() -> None:
    e = export_credit_entry("export-7", 7, 3, 50, T0)
    assert e.kind is EntryKind.EXPORT_CREDIT and e.amount == 50
    assert {p.account: p.amount for p in e.postings} == {GRID_EXPORT_BUYER: 50, driver_export_credit(3): -50}
    with pytest.raises(LedgerError):
        export_credit_entry("export-7", 7, 3, 0, T0)


def test_a_late_reading_takes_a_settled_record_up_as_if_settled_on_it() -> None:
    terms = ExportTerms(1, 25, 40, T0)
    settled = settle_export(ExportRecord(1, 50_000, 52_000), terms)
    assert (settled.exported_wh, settled.credit) == (2_000, 50)
    later = settle_late_export(settled, 55_000, terms)
    assert (later.last_wh, later.exported_wh, later.credit) == (55_000, 5_000, 125)
    assert settle_late_export(settled, 52_000, terms) == settled  # not above: nothing more
    assert settle_late_export(settled, 51_000, terms) == settled
    unsettled = ExportRecord(1, 50_000, 52_000)
    assert settle_late_export(unsettled, 55_000, terms) == unsettled  # its stop settles it
