"""Files exchanged with chargers through the backend's own HTTP locations.

An operator publishes a firmware image, and UpdateFirmware tells a charger its URL; GetLog (1.6
GetDiagnostics) tells a charger where to upload, a slot made for that one request. Both are named
by an unguessable token in the URL, which is all a charger presents (firmware cannot send our
credentials with a download or an upload). A slot takes one upload; a file is kept whole.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from chargeshare.domain.errors import ConcurrentChange, InvalidRequest, NotFound
from chargeshare.services.clock import Clock
from chargeshare.services.ports import Store
from chargeshare.services.records import ChargerFile

FIRMWARE, LOG = "firmware", "log"
MAX_FILE_BYTES = 64 * 1024 * 1024  # a firmware image or a log; more is refused, not truncated
MAX_NAME = 255
ALREADY = "this location has its upload already; ask the charger again"


def new_token() -> str:
    """256 random bits in hex: a URL-safe token that a command line never mistakes for an option."""
    return secrets.token_hex(32)


class ChargerFilesService:
    def __init__(self, store: Store, clock: Clock, token: Callable[[], str] = new_token) -> None:
        self.store, self.clock, self.token = store, clock, token

    def publish_firmware(self, name: str, content: bytes) -> ChargerFile:
        """Keep an image to serve to chargers; its token goes into UpdateFirmware's location."""
        if (
            not 0 < len(name) <= MAX_NAME
            or name.strip() != name
            or any(c in '/\\"' or not c.isprintable() for c in name)
        ):
            raise InvalidRequest(
                f'a firmware name is 1 to {MAX_NAME} printable characters, without / \\ " or edge spaces'
            )
        _check_size(content)
        with self.store.transaction() as tx:
            return tx.files.add(self.token(), FIRMWARE, None, name, self.clock.now(), content)

    def log_slot(self, cp_id: str) -> ChargerFile:
        """Where the charger uploads the log it is about to be asked for. NotFound: no such charger."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            tx.chargers.get(cp_id)
            return tx.files.add(self.token(), LOG, cp_id, f"{cp_id}-{now:%Y%m%dT%H%M%SZ}.log", now, None)

    def awaiting_upload(self, token: str) -> ChargerFile:
        """The slot `token` names, while it waits: NotFound or ConcurrentChange as `receive` says."""
        with self.store.reading() as tx:
            slot = tx.files.by_token(token)
        if slot.kind != LOG:
            raise NotFound("no such upload location")
        if slot.size is not None:
            raise ConcurrentChange(ALREADY)
        return slot

    def receive(self, token: str, content: bytes) -> ChargerFile:
        """A charger's upload into its slot. NotFound for a token that names no slot (a firmware
        image is no slot); ConcurrentChange when the slot already holds an upload."""
        _check_size(content)
        digest = hashlib.sha256(content).hexdigest()
        with self.store.transaction() as tx:
            slot = tx.files.by_token(token)
            if slot.kind != LOG:
                raise NotFound("no such upload location")
            if not tx.files.fill(token, content, digest, self.clock.now()):
                raise ConcurrentChange(ALREADY)
            return tx.files.by_token(token)

    def firmware_image(self, token: str) -> tuple[ChargerFile, bytes]:
        """What a charger downloads. NotFound for anything but a published image."""
        with self.store.reading() as tx:
            f = tx.files.by_token(token)
            content = tx.files.content(token)
        if f.kind != FIRMWARE or content is None:
            raise NotFound("no such firmware")
        return f, content

    def uploaded(self, token: str) -> tuple[ChargerFile, bytes]:
        """An operator's download of what a charger uploaded. NotFound until it arrives."""
        with self.store.reading() as tx:
            f = tx.files.by_token(token)
            content = tx.files.content(token)
        if content is None:
            raise NotFound("nothing has been uploaded there yet")
        return f, content

    def logs(self, cp_id: str) -> list[ChargerFile]:
        with self.store.reading() as tx:
            tx.chargers.get(cp_id)
            return list(tx.files.of_charger(cp_id))

    def firmware(self) -> list[ChargerFile]:
        with self.store.reading() as tx:
            return list(tx.files.firmware())


def _check_size(content: bytes) -> None:
    if not content:
        raise InvalidRequest("an empty file")
    if len(content) > MAX_FILE_BYTES:
        raise InvalidRequest(f"a file is at most {MAX_FILE_BYTES:,} bytes")
