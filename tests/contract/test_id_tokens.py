"""The id tokens repository's contract, on the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.domain.tokens import TokenStatus, TokenType
from chargeshare.services.ports import UnitOfWork
from tests.conftest import T0
from tests.contract.test_repositories import a_charger


def a_token(tx: UnitOfWork, driver: int, value: str, **changes: object) -> int:
    fields: dict[str, object] = {
        "driver_id": driver,
        "value": value,
        "type_": TokenType.ISO14443,
        "status": TokenStatus.ACCEPTED,
        "expires_at": None,
        "group_id": None,
        "master_pass": False,
        "created_at": T0,
        **changes,
    }
    return tx.tokens.add(**fields)  # type: ignore[arg-type]


def test_tokens_are_kept_as_given_and_found_by_value(app: App) -> None:
    with app.store.transaction() as tx:
        ann = tx.accounts.add_driver("Ann", "ANN-TAG")
        bob = tx.accounts.add_driver("Bob", "BOB-TAG")
        card = a_token(
            tx,
            ann,
            "04A1B2C3D4",
            type_=TokenType.ISO15693,
            expires_at=T0 + timedelta(days=30),
            group_id="FLEET-1",
        )
        master = a_token(tx, bob, "MASTER-1", type_=TokenType.CENTRAL, master_pass=True)
    with app.store.reading() as tx:
        got = tx.tokens.get(card)
        assert (got.driver_id, got.value, got.type, got.status) == (
            ann,
            "04A1B2C3D4",
            TokenType.ISO15693,
            TokenStatus.ACCEPTED,
        )
        assert got.expires_at == T0 + timedelta(days=30)
        assert got.expires_at is not None and got.expires_at.tzinfo is not None
        assert (got.group_id, got.master_pass, got.created_at) == ("FLEET-1", False, T0)
        assert tx.tokens.by_value("04A1B2C3D4") == got
        # OCPP idTags are CiStrings: a token is found whatever the case of its letters.
        assert tx.tokens.by_value("04a1b2c3D4") == got
        assert tx.tokens.by_value("04A1B2C3D") is None
        assert tx.tokens.get(master).master_pass
        assert [k.token_id for k in tx.tokens.all()] == [card, master]
        assert [k.token_id for k in tx.tokens.all(bob)] == [master]
        with pytest.raises(NotFound):
            tx.tokens.get(master + 100)


def test_a_value_names_one_token_and_never_another_drivers_tag(app: App) -> None:
    with app.store.transaction() as tx:
        ann = tx.accounts.add_driver("Ann", "ANN-TAG")
        bob = tx.accounts.add_driver("Bob", "BOB-TAG")
        a_token(tx, ann, "CARD-1")
        with pytest.raises(InvalidRequest):
            a_token(tx, bob, "CARD-1")
        with pytest.raises(InvalidRequest):
            a_token(tx, ann, "BOB-TAG")
        # The unit of work is still usable after a refusal, and a driver's own tag may be a token.
        own = a_token(tx, bob, "BOB-TAG", status=TokenStatus.BLOCKED)
        with pytest.raises(NotFound):
            a_token(tx, bob + 100, "CARD-2")
    with app.store.reading() as tx:
        assert [k.value for k in tx.tokens.all()] == ["CARD-1", "BOB-TAG"]
        assert tx.tokens.get(own).status is TokenStatus.BLOCKED


def test_a_value_differing_only_in_case_is_the_same_token_and_the_same_tag(app: App) -> None:
    with app.store.transaction() as tx:
        ann = tx.accounts.add_driver("Ann", "Ann-Tag")
        bob = tx.accounts.add_driver("Bob", "BOB-TAG")
        a_token(tx, ann, "card-1")
        for driver, value in ((ann, "CARD-1"), (bob, "Card-1"), (ann, "bob-tag")):
            with pytest.raises(InvalidRequest):
                a_token(tx, driver, value)
        for tag in ("CARD-1", "ann-tag"):  # a new driver's tag is no one's card, nor tag
            with pytest.raises(InvalidRequest):
                tx.accounts.add_driver("Eve", tag)
        own = a_token(tx, ann, "ANN-TAG", status=TokenStatus.BLOCKED)  # her own tag, as a token
        # Letters beyond ASCII are compared as they are.
        a_token(tx, bob, "café")
        a_token(tx, bob, "CAFÉ")
    with app.store.reading() as tx:
        assert [k.value for k in tx.tokens.all()] == ["card-1", "ANN-TAG", "café", "CAFÉ"]
        assert tx.tokens.get(own).driver_id == ann
        found = tx.accounts.driver_by_tag("ann-TAG")
        assert found is not None and (found.driver_id, found.id_tag) == (ann, "Ann-Tag")
        card = tx.tokens.by_value("CARD-1")
        assert card is not None and card.value == "card-1"


def test_status_changes(app: App) -> None:
    with app.store.transaction() as tx:
        ann = tx.accounts.add_driver("Ann", "ANN-TAG")
        card = a_token(tx, ann, "CARD-1")
        tx.tokens.set_status(card, TokenStatus.BLOCKED)
        with pytest.raises(NotFound):
            tx.tokens.set_status(card + 100, TokenStatus.BLOCKED)
    with app.store.reading() as tx:
        assert tx.tokens.get(card).status is TokenStatus.BLOCKED


def test_walk_in_setting_per_charger(app: App) -> None:
    with app.store.transaction() as tx:
        charger, _ = a_charger(tx, "CP1")
        other, _ = a_charger(tx, "CP2")
        assert tx.tokens.walk_in_price(charger) is None
        tx.tokens.set_walk_in(charger, 45)
        tx.tokens.set_walk_in(charger, 50)
        with pytest.raises(NotFound):
            tx.tokens.set_walk_in(other + 100, 45)
    with app.store.reading() as tx:
        assert tx.tokens.walk_in_price(charger) == 50
        assert tx.tokens.walk_in_price(other) is None
    with app.store.transaction() as tx:
        tx.tokens.set_walk_in(charger, None)
        tx.tokens.set_walk_in(other, 30)
        tx.chargers.remove("CP2")  # its setting goes with it
    with app.store.reading() as tx:
        assert tx.tokens.walk_in_price(charger) is None
        assert tx.tokens.walk_in_price(other) is None
