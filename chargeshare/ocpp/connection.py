"""One charger's OCPP conversation, sans-I/O: `receive(text)` gives the reply to send and any
completed outbound calls; `call(...)` gives a frame to send; `tick(now)` expires unanswered calls.

The same class serves both roles: the CSMS (handlers for charger-initiated actions) and the
virtual charger (handlers for CSMS commands). Handlers run synchronously, so the reply is only
built after the handler's effect is committed: a CALLRESULT always follows a durable effect.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from chargeshare.domain.errors import Busy, DomainError
from chargeshare.ocpp import OcppVersion
from chargeshare.ocpp.frames import (
    CALL,
    CALLRESULT,
    Call,
    CallError,
    CallResult,
    LocalProtocolError,
    RemoteProtocolError,
    check_payload,
    encode,
    error_code,
    parse,
)

log = logging.getLogger(__name__)

# How long a call waits for its answer unless told otherwise.
CALL_TIMEOUT_S: Final = 30

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class CallRejected(Exception):
    """A handler's way to answer with a specific CALLERROR code."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code, self.description = code, description


@dataclass(frozen=True)
class Outcome:
    """How one of our outbound calls ended: a result payload, a CALLERROR, or a timeout."""

    unique_id: str
    action: str
    payload: dict[str, Any] | None = None
    error: str | None = None  # CALLERROR code, or "Timeout"
    # The error is ours: the charger's CALLRESULT broke the schema (it sent no CALLERROR).
    malformed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Received:
    reply: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    action: str = ""  # the call answered by `reply`; "" for a frame too broken to name one


@dataclass
class _Pending:
    action: str
    deadline: float


class Connection:
    def __init__(
        self,
        version: OcppVersion,
        handlers: Mapping[str, Handler],
        *,
        id_prefix: str = "",
        call_timeout_s: float = CALL_TIMEOUT_S,
        check_own: bool = True,
        answered: Callable[[], None] | None = None,
    ) -> None:
        self.version = version
        self.handlers = handlers
        # Told when the peer answers one of our calls (a result or an error, late ones included): a
        # frame that reaches no handler, yet says the peer is there (the CSMS counts it as alive).
        self.answered = answered
        self.call_timeout_s = call_timeout_s
        # Check what we send (our calls, our handlers' replies) against the schema too. Everything
        # received is always checked; a link whose two ends are both ours (the DES) turns this off,
        # so each frame is still checked once, by its receiver.
        self.check_own = check_own
        self._ids = (f"{id_prefix}{n}" for n in itertools.count(1))
        self._pending: dict[str, _Pending] = {}

    # ---- inbound -------------------------------------------------------------------------------
    def receive(self, text: str | bytes) -> Received:
        try:
            frame = parse(text)
        except RemoteProtocolError as exc:
            return Received(reply=self._error(exc.unique_id, exc.code, exc.description))
        if isinstance(frame, Call):
            return Received(reply=self._handle(frame), action=frame.action)
        if self.answered is not None:
            self.answered()  # a late answer too: the peer is there, whatever became of the call
        pending = self._pending.pop(frame.unique_id, None)
        if pending is None:
            log.info("ignoring a response to unknown call %s", frame.unique_id)
            return Received()
        if isinstance(frame, CallError):
            return Received(outcomes=[Outcome(frame.unique_id, pending.action, error=frame.code)])
        try:
            check_payload(
                pending.action,
                frame.payload,
                self.version,
                CALLRESULT,
                frame.unique_id,
                storable=frame.storable,
            )
        except RemoteProtocolError as exc:
            outcome = Outcome(frame.unique_id, pending.action, error=exc.code, malformed=True)
            return Received(outcomes=[outcome])
        return Received(outcomes=[Outcome(frame.unique_id, pending.action, payload=frame.payload)])

    def _handle(self, call: Call) -> str:
        try:
            check_payload(
                call.action,
                call.payload,
                self.version,
                CALL,
                call.unique_id,
                storable=call.storable,
            )
            handler = self.handlers.get(call.action)
            if handler is None:
                raise RemoteProtocolError(
                    "NotSupported", f"{call.action} is not supported here", call.unique_id
                )
            response = handler(call.payload)
        except RemoteProtocolError as exc:
            return self._error(call.unique_id, exc.code, exc.description)
        except CallRejected as exc:
            return self._error(call.unique_id, exc.code, exc.description)
        except Busy as exc:
            # Nothing was kept, and the same frame may succeed shortly: a charger sends a transaction
            # message the central system failed to process again (TransactionMessageAttempts).
            log.warning("%s answered busy: %s", call.action, exc)
            return self._error(call.unique_id, "InternalError", f"busy, try again: {exc}")
        except DomainError as exc:
            return self._error(call.unique_id, "GenericError", str(exc))
        except Exception:
            log.exception("handler for %s failed", call.action)
            return self._error(call.unique_id, "InternalError", f"{call.action} failed on our side")
        try:
            if self.check_own:
                check_payload(call.action, response, self.version, CALLRESULT, call.unique_id)
        except RemoteProtocolError as exc:
            log.error("our %s response breaks the schema: %s", call.action, exc.description)
            return self._error(call.unique_id, "InternalError", "response failed validation on our side")
        return encode(CallResult(call.unique_id, response))

    def _error(self, unique_id: str, code: str, description: str) -> str:
        return encode(CallError(unique_id, error_code(code, self.version), description[:500]))

    # ---- outbound ------------------------------------------------------------------------------
    def call(self, action: str, payload: dict[str, Any], now: float) -> tuple[str, str]:
        """Frame a call to the peer. Returns (unique_id, text); the answer arrives via `receive`."""
        uid = next(self._ids)
        try:
            if self.check_own:
                check_payload(action, payload, self.version, CALL, uid)
        except RemoteProtocolError as exc:
            raise LocalProtocolError(f"our {action} breaks the schema: {exc.description}") from exc
        self._pending[uid] = _Pending(action, now + self.call_timeout_s)
        return uid, encode(Call(uid, action, payload))

    def forget(self, unique_id: str) -> None:
        """Stop waiting for one call (its caller gave up); a late answer is then ignored."""
        self._pending.pop(unique_id, None)

    def tick(self, now: float) -> list[Outcome]:
        expired = [uid for uid, p in self._pending.items() if p.deadline <= now]
        return [Outcome(uid, self._pending.pop(uid).action, error="Timeout") for uid in expired]

    @property
    def pending_calls(self) -> int:
        return len(self._pending)
