"""The virtual charger's local authorisation list and authorisation cache, version-neutral.

The CSMS installs the list (SendLocalList, Full or Differential, each with a version) and reads its
version (GetLocalListVersion); the cache keeps the charger's last Authorize answers and is emptied
by ClearCache. Neither decides a start while online: the CSMS is asked, as before."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

MAX_ENTRIES = 1_000  # LocalAuthListMaxLength: a list longer than this is refused (Failed)


@dataclass(frozen=True)
class LocalEntry:
    """One token as the list has it. `status` None (a Differential update): remove it."""

    id_tag: str
    status: str | None
    expires_at: datetime | None = None
    group_id: str | None = None


class LocalAuth:
    def __init__(self) -> None:
        self.version = 0  # 0: no list installed
        self.entries: dict[str, LocalEntry] = {}
        self.cache: dict[str, str] = {}  # id tag -> the status the CSMS last answered

    def apply(self, version: int, full: bool, entries: Sequence[LocalEntry]) -> str:
        """Install an update; the answer's status (Accepted, VersionMismatch, Failed). A differential
        update must be newer than the list it changes; a full one replaces whatever is there."""
        if not full and version <= self.version:
            return "VersionMismatch"
        if version < 1:
            return "Failed"
        kept = {} if full else dict(self.entries)
        for e in entries:
            if e.status is None:
                kept.pop(e.id_tag, None)
            else:
                kept[e.id_tag] = e
        if len(kept) > MAX_ENTRIES:
            return "Failed"
        self.entries, self.version = kept, version
        return "Accepted"

    def remember(self, id_tag: str, status: str) -> None:
        self.cache[id_tag] = status

    def clear_cache(self) -> None:
        self.cache.clear()

    def status_of(self, id_tag: str) -> str | None:
        """What the list says of the token (it wins over the cache), else the cache; None: unknown."""
        entry = self.entries.get(id_tag)
        return entry.status if entry is not None else self.cache.get(id_tag)
