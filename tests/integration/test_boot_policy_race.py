"""A boot racing its charger's rejection on PostgreSQL: the charger never ends stored online while
out of service, whichever commits first."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from chargeshare.adapters.sql import chargers as sql_chargers
from chargeshare.bootstrap import App
from chargeshare.domain.charger import BootPolicy, ChargerStatus
from chargeshare.ocpp import V16
from tests.conftest import add_charger, sql_store
from tests.integration.pausing import lock_waits

pytestmark = pytest.mark.postgres

WAIT_S = 30.0


def rejection_waiting_or_done(app: App, rejecting: threading.Thread) -> None:
    """Until the rejection has committed, or waits on a row lock this boot holds."""
    deadline = time.monotonic() + WAIT_S
    probe = sql_store(app).engine
    while rejecting.is_alive():
        if lock_waits(probe):
            return
        assert time.monotonic() < deadline, "the rejection neither finished nor waited on a lock"
        time.sleep(0.01)


def test_a_boot_racing_a_rejection_never_leaves_the_charger_online(
    pg_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_charger(pg_app, "CP1", online=False)
    read = sql_chargers.SqlChargers.boot_policy
    rejecting = threading.Thread(target=pg_app.marketplace.set_boot_policy, args=("CP1", BootPolicy.REJECTED))

    def policy_read_mid_boot(self: Any, cp_id: str) -> BootPolicy:
        # The rejection runs just after the boot has read the policy, before the boot commits.
        policy = read(self, cp_id)
        if rejecting.ident is None:
            rejecting.start()
            rejection_waiting_or_done(pg_app, rejecting)
        return policy

    monkeypatch.setattr(sql_chargers.SqlChargers, "boot_policy", policy_read_mid_boot)
    answer = pg_app.charging.boot("CP1", V16)
    rejecting.join(WAIT_S)
    assert not rejecting.is_alive()
    with pg_app.store.reading() as tx:
        charger = tx.chargers.get("CP1")
    assert charger.boot_policy is BootPolicy.REJECTED
    assert charger.status is ChargerStatus.REGISTERED, f"answered {answer.status}, stored {charger.status}"
