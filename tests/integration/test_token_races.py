"""Token values and drivers' id tags on PostgreSQL under concurrency: a value names one driver, in
any case of its letters. The unique indexes on the folded value refuse a second token (or tag)
whatever races it, and a token racing another driver's registration of the same tag is seen by
whichever comes second, as both take their turn to write such names."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql import tokens as sql_tokens
from chargeshare.bootstrap import App
from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.tokens import IdToken
from tests.conftest import T0, sql_store
from tests.integration.test_boot_policy_race import WAIT_S
from tests.integration.test_boot_policy_race import rejection_waiting_or_done as done_or_waiting

pytestmark = pytest.mark.postgres


def racing(pg_app: App, monkeypatch: pytest.MonkeyPatch, other: Callable[[], object]) -> list[object]:
    """Run `other` in a thread just after a token add has written its row, before it commits, and
    wait until `other` is done or waits on a lock. Its outcome (a result or an exception) is kept."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(other())
        except Exception as exc:  # the test looks at it
            outcome.append(exc)

    thread = threading.Thread(target=run)
    get = sql_tokens.SqlIdTokens.get

    def get_mid_add(self: Any, token_id: int) -> IdToken:
        # TokenService.add reads the token back in its own unit of work, after the insert.
        if thread.ident is None:
            thread.start()
            done_or_waiting(pg_app, thread)
        return get(self, token_id)

    monkeypatch.setattr(sql_tokens.SqlIdTokens, "get", get_mid_add)
    outcome.append(thread)
    return outcome


def finished(outcome: list[object]) -> object:
    thread = outcome.pop(0)
    assert isinstance(thread, threading.Thread)
    thread.join(WAIT_S)
    assert not thread.is_alive()
    (result,) = outcome
    return result


def test_two_adds_of_one_token_value_in_two_cases_at_once_make_one_token(
    pg_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = pg_app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
    bob = pg_app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    outcome = racing(pg_app, monkeypatch, lambda: pg_app.tokens.add(bob, "card-1"))
    pg_app.tokens.add(ann, "CARD-1")
    assert isinstance(finished(outcome), InvalidRequest)
    assert [(v.token.driver_id, v.token.value) for v in pg_app.tokens.list()] == [(ann, "CARD-1")]


def test_a_token_racing_another_drivers_registration_of_that_tag_leaves_one_owner(
    pg_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = pg_app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
    outcome = racing(pg_app, monkeypatch, lambda: pg_app.marketplace.add_driver("Eve", "eve-1"))
    pg_app.tokens.add(ann, "EVE-1")
    assert isinstance(finished(outcome), InvalidRequest)  # waited its turn, then saw Ann's card
    with pg_app.store.reading() as tx:
        assert tx.accounts.driver_by_tag("EVE-1") is None
        card = tx.tokens.by_value("eve-1")
    assert card is not None and card.driver_id == ann


@pytest.mark.parametrize("case", ["token", "tag"])
def test_the_database_itself_refuses_a_value_differing_only_in_case(pg_app: App, case: str) -> None:
    """Below the services: the unique index on the folded value, whoever writes."""
    ann = pg_app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
    pg_app.tokens.add(ann, "CARD-1")
    engine = sql_store(pg_app).engine
    if case == "token":
        row = insert(t.id_tokens).values(
            driver_id=ann, value="card-1", type="ISO14443", status="Accepted", created_at=T0
        )
    else:
        row = insert(t.drivers).values(name="Eve", id_tag="ann-tag")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(row)
    # Letters beyond ASCII are compared as they are: the index folds ASCII only, as the code does.
    with engine.begin() as conn:
        conn.execute(insert(t.drivers).values(name="Zoë", id_tag="zoë"))
        conn.execute(insert(t.drivers).values(name="Zoë", id_tag="ZOË"))
