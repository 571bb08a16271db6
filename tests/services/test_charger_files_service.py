"""Files for chargers on the in-memory store: what is refused, and that a slot takes one upload."""

from __future__ import annotations

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import ConcurrentChange, InvalidRequest, NotFound
from chargeshare.services import charger_files
from tests.conftest import add_charger


def test_sizes_names_and_slots(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    add_charger(app, online=False)
    monkeypatch.setattr(charger_files, "MAX_FILE_BYTES", 8)
    with pytest.raises(InvalidRequest, match="at most"):
        app.files.publish_firmware("big.bin", b"123456789")
    for bad in ("", " lead.bin", "a/b.bin", "x" * 256):
        with pytest.raises(InvalidRequest):
            app.files.publish_firmware(bad, b"1")
    image = app.files.publish_firmware("ok.bin", b"12345678")
    with pytest.raises(NotFound):
        app.files.receive(image.token, b"1")  # an image is not an upload location
    with pytest.raises(NotFound):
        app.files.log_slot("NOPE")
    slot = app.files.log_slot("CP1")
    with pytest.raises(InvalidRequest, match="at most"):
        app.files.receive(slot.token, b"123456789")  # refused whole, the slot still open
    assert app.files.receive(slot.token, b"log").size == 3
    with pytest.raises(ConcurrentChange):
        app.files.receive(slot.token, b"log2")
    assert app.files.uploaded(slot.token)[1] == b"log"
    assert [f.token for f in app.files.logs("CP1")] == [slot.token]
    assert app.files.firmware_image(image.token)[1] == b"12345678"
    with pytest.raises(NotFound):
        app.files.firmware_image(slot.token)


def test_default_tokens_never_look_like_a_command_line_option() -> None:
    # A token with a leading "-" made `chargeshare files get <token>` parse it as an option.
    from chargeshare.services.charger_files import new_token

    tokens = [new_token() for _ in range(2000)]
    assert all(len(t) == 64 and set(t) <= set("0123456789abcdef") for t in tokens)
    assert len(set(tokens)) == len(tokens)
