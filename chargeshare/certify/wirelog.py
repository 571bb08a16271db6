"""The wire log: every OCPP frame between the certifier and the charger, as captured on the link.

Verdicts are computed from these entries alone, never from what a charger's answer claims about
itself, and each verdict quotes the entries that prove it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from chargeshare.ocpp.frames import read_json

Direction = Literal["in", "out"]
CALL, CALLRESULT, CALLERROR = 2, 3, 4


@dataclass(frozen=True)
class Entry:
    """One frame: `in` came from the charger under test, `out` went to it."""

    seq: int
    at: float  # seconds since the log started
    direction: Direction
    text: str
    kind: int | None  # 2 CALL, 3 CALLRESULT, 4 CALLERROR; None when the frame cannot be read
    unique_id: str | None
    action: str | None  # for results and errors: the action of the call they answer
    payload: dict[str, Any] | None  # CALL / CALLRESULT payload; CALLERROR details
    error_code: str | None = None
    arrow: str = ""  # who sent it to whom, in words

    def line(self) -> str:
        return f"#{self.seq:<4} {self.at:8.3f}s  {self.arrow}  {self.text}"


def _read(text: str) -> tuple[int | None, str | None, str | None, dict[str, Any] | None, str | None]:
    """(kind, unique id, action, payload, error code); Nones where the frame is not well formed."""
    try:
        msg = read_json(text)
    except ValueError:
        return None, None, None, None, None
    if not isinstance(msg, list) or len(msg) < 3 or msg[0] not in (CALL, CALLRESULT, CALLERROR):
        return None, None, None, None, None
    uid = msg[1] if isinstance(msg[1], str) else None
    if msg[0] == CALL and len(msg) == 4 and isinstance(msg[2], str) and isinstance(msg[3], dict):
        return CALL, uid, msg[2], msg[3], None
    if msg[0] == CALLRESULT and len(msg) == 3 and isinstance(msg[2], dict):
        return CALLRESULT, uid, None, msg[2], None
    if msg[0] == CALLERROR and len(msg) == 5 and isinstance(msg[2], str):
        details = msg[4] if isinstance(msg[4], dict) else None
        return CALLERROR, uid, None, details, msg[2]
    return None, uid, None, None, None


class WireLog:
    """Collects the frames of one charge point (a registry tap or the virtual charger's own link)."""

    def __init__(
        self,
        cp_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        under_test: str = "charger",
    ) -> None:
        """`under_test` names the party whose frames are "in": the charger, or the CSMS."""
        self.cp_id = cp_id
        other = "CSMS" if under_test == "charger" else "charger"
        self._arrows = {"in": f"{under_test} -> {other}", "out": f"{other} -> {under_test}"}
        self.entries: list[Entry] = []
        self._clock = clock
        self._t0 = clock()
        self._calls: dict[tuple[Direction, str], str] = {}  # (direction, uid) -> action
        self._listeners: list[Callable[[], None]] = []

    def tap(self, cp_id: str, direction: Direction, text: str) -> None:
        """The shape `ChargerRegistry.add_tap` expects; frames of other charge points are ignored."""
        if self.cp_id is None or cp_id == self.cp_id:
            self.record(direction, text)

    def record(self, direction: Direction, text: str) -> None:
        kind, uid, action, payload, code = _read(text)
        if kind == CALL and uid is not None and action is not None:
            self._calls[(direction, uid)] = action
        elif kind in (CALLRESULT, CALLERROR) and uid is not None:
            answered: Direction = "out" if direction == "in" else "in"
            action = self._calls.get((answered, uid))
        self.entries.append(
            Entry(
                len(self.entries) + 1,
                self._clock() - self._t0,
                direction,
                text,
                kind,
                uid,
                action,
                payload,
                code,
                self._arrows[direction],
            )
        )
        for listener in list(self._listeners):
            listener()

    def on_entry(self, listener: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def now(self) -> float:
        """Seconds since the log started, on the same scale as `Entry.at`."""
        return self._clock() - self._t0

    def mark(self) -> int:
        """A position: entries after it are `since(mark)`."""
        return len(self.entries)

    def since(self, mark: int) -> list[Entry]:
        return self.entries[mark:]

    def calls(self, action: str | None = None, *, direction: Direction = "in", since: int = 0) -> list[Entry]:
        return [
            e
            for e in self.entries[since:]
            if e.kind == CALL and e.direction == direction and (action is None or e.action == action)
        ]

    def answer_to(self, call: Entry) -> Entry | None:
        """The CALLRESULT or CALLERROR that answered `call`, if one was captured."""
        reply_dir: Direction = "out" if call.direction == "in" else "in"
        return next(
            (
                e
                for e in self.entries[call.seq :]
                if e.direction == reply_dir
                and e.kind in (CALLRESULT, CALLERROR)
                and e.unique_id == call.unique_id
            ),
            None,
        )

    def by_uid(self, unique_id: str, direction: Direction) -> Entry | None:
        """The latest call with this id (ids start again on a new connection)."""
        return next(
            (
                e
                for e in reversed(self.entries)
                if e.kind == CALL and e.direction == direction and e.unique_id == unique_id
            ),
            None,
        )


def excerpt(entries: Iterable[Entry], limit: int = 40) -> list[str]:
    """The lines a report quotes; long windows keep their first and last frames."""
    unique = {e.seq: e for e in entries}
    lines = [unique[seq].line() for seq in sorted(unique)]
    if len(lines) <= limit:
        return lines
    head, tail = lines[: limit // 2], lines[-(limit // 2) :]
    return [*head, f"... {len(lines) - len(head) - len(tail)} frames omitted ...", *tail]
