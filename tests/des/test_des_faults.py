"""The DES engine fires a scenario's faults as the live engine does: on chargers of the version a
fault names, and each at its own time while others still last."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.des import DesParams, run_des
from simulators.des.charger import DesCharger, Process
from simulators.scenario import load

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def disconnects() -> Iterator[list[tuple[float, str, str]]]:
    """(virtual second, charger, OCPP version) of each disconnect in mixed-protocol-fleet's faults
    (one charger of each OCPP version, all at minute 30 for 15 minutes), on a smaller fleet."""
    seen: list[tuple[float, str, str]] = []
    original = DesCharger.disconnect_for

    def spy(self: DesCharger, seconds: float) -> Process:
        seen.append((self.env.now, self.cp_id, self.dialect.version))
        return original(self, seconds)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DesCharger, "disconnect_for", spy)
        scenario = load(SCENARIOS / "mixed-protocol-fleet.yaml")
        report = run_des(DesParams.from_live(scenario.params, chargers=4, drivers=6)).report
    assert report.ok, [r for r in report.invariants if not r.ok] + [report.errors]
    yield seen


def test_a_fault_naming_a_protocol_hits_only_chargers_speaking_it(
    disconnects: list[tuple[float, str, str]],
) -> None:
    assert sorted(version for _, _, version in disconnects) == ["1.6", "2.0.1", "2.1"]
    assert len({cp_id for _, cp_id, _ in disconnects}) == 3


def test_faults_starting_together_fire_together_while_the_first_still_lasts(
    disconnects: list[tuple[float, str, str]],
) -> None:
    assert [at for at, _, _ in disconnects] == [30 * 60.0] * 3
