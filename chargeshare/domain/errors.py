"""The domain's exception tree. Each error carries a stable code that edges map to HTTP or OCPP."""


class DomainError(Exception):
    """A rule of the marketplace was broken by the request (their fault, not a bug)."""

    code = "domain_error"


class NotFound(DomainError):
    code = "not_found"


class InvalidTransition(DomainError):
    code = "invalid_transition"


class BookingConflict(DomainError):
    """The connector is already booked for an overlapping period."""

    code = "booking_conflict"


class ChargerUnavailable(BookingConflict):
    """Outside the host's availability calendar, or the charger cannot take a booking now."""

    code = "charger_unavailable"


class StaleFencingToken(BookingConflict):
    """A lock holder whose lease expired tried to write after a newer holder."""

    code = "stale_fencing_token"


class PriceAboveLimit(DomainError):
    """The price the booking would be made at is above the most the driver said they accept."""

    code = "price_above_limit"


class QuoteExpired(DomainError):
    """The held quote has expired: ask for a new one."""

    code = "quote_expired"


class QuoteUsed(BookingConflict):
    """The held quote was used by a booking already (a quote is used once)."""

    code = "quote_used"


class QuoteMismatch(DomainError):
    """The booking asks for another charger or window than the held quote was given for."""

    code = "quote_mismatch"


class ConcurrentChange(DomainError):
    """Someone else changed it between our reading it and writing it: look again."""

    code = "concurrent_change"


class StartTaken(ConcurrentChange):
    """A session with this start (connector, tag, meter start, time) was committed by another unit of
    work after this one looked for it: the same start, sent again on another link."""


class RequestInProgress(ConcurrentChange):
    """A request sent again under its Idempotency-Key while the first is still being worked on."""

    code = "request_in_progress"
    retry_after_s = 1.0


class InvalidRequest(DomainError):
    code = "invalid_request"


class InvalidField(InvalidRequest):
    """One field of a request is wrong; the message starts with the field's name, and `field` names it."""

    code = "invalid_field"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class IdempotencyKeyReused(InvalidRequest):
    """An Idempotency-Key already used by the same account for a different request."""

    code = "idempotency_key_reused"


class PaymentDeclined(DomainError):
    code = "payment_declined"


class PaymentUnavailable(DomainError):
    """The payment provider cannot be reached now; nothing was booked or charged."""

    code = "payment_unavailable"


class LedgerError(DomainError):
    """A ledger operation that would break double-entry or two-phase rules."""

    code = "ledger_error"


class Unauthorized(DomainError):
    """No credentials, or ones that are wrong, malformed or expired."""

    code = "unauthorized"


class Forbidden(DomainError):
    """Signed in, but this role may not do that."""

    code = "forbidden"


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Busy(DomainError):
    """The server has as much of this work in hand as it takes on at once; nothing was done."""

    code = "busy"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DatabaseBusy(Busy):
    """The database did not grant a lock, or finish a statement, within its bounded wait: whatever
    holds it is still at work. Nothing of this unit of work was kept; try again shortly."""

    code = "database_busy"
