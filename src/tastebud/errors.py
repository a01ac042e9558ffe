"""The exceptions tastebud raises, so callers know what to catch.

Each class below is also an error ``type`` of the HTTP API (``{"error": {"type", "message"}}``),
with its status; the SDK raises the same class for it (docs/api.md). Other errors are subclasses
of these and answer as their nearest ancestor listed here (:func:`wire_type`).

TastebudError                 base; unexpected failures answer InternalError
├── InvalidInput              bad data or arguments (HTTP 422)
│   ├── FilterSyntaxError     a filter expression does not parse (422)
│   └── PayloadTooLarge       a body or list over its limit (413)
├── Forbidden                 the token lacks the scope (403)
│   └── Unauthorized          no token, or an unknown or revoked one (401)
├── NotFound                  (404)
├── MethodNotAllowed          the path exists, the method does not (405)
├── AlreadyExists             (409)
├── TooManyRequests           the token is over its rate limit; see Retry-After (429)
├── NotReady                  not trained or not available yet (503)
│   ├── Overloaded            too many requests in flight; see Retry-After (503)
│   └── StoreUnavailable      the database cannot be reached now; see Retry-After (503)
└── InternalError             a bug or an unexpected failure; the server log has it (500)
"""

from __future__ import annotations


class TastebudError(Exception):
    """Base of every error tastebud raises on purpose."""

    status_code = 500
    # Seconds the server asked the SDK's caller to wait (its ``Retry-After``); None: not said.
    retry_after: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(TastebudError):
    """The caller sent something malformed; the message names the field and value."""

    status_code = 422


class FilterSyntaxError(InvalidInput):
    """A filter expression does not parse."""


class PayloadTooLarge(InvalidInput):
    """A request body, or a list in it, is over its limit."""

    status_code = 413


class Forbidden(TastebudError):
    """The token is valid but lacks the scope the operation needs."""

    status_code = 403


class Unauthorized(Forbidden):
    """No token, or one the server does not know (or revoked)."""

    status_code = 401


class NotFound(TastebudError):
    status_code = 404


class MethodNotAllowed(TastebudError):
    """The path exists, but not with this method."""

    status_code = 405


class AlreadyExists(TastebudError):
    status_code = 409


class TooManyRequests(TastebudError):
    """The token is over its rate limit; retry after the ``Retry-After`` seconds."""

    status_code = 429


class NotReady(TastebudError):
    """Not trained, loaded or reachable yet; retrying later may succeed."""

    status_code = 503
    retry_after_seconds = 1.0  # the API's Retry-After header


class StoreUnavailable(NotReady):
    """The database cannot be reached (or did not answer in time); nothing was written. Retry
    after ``retry_after_seconds``: the server reconnects by itself when it is back."""


class Overloaded(NotReady):
    """Too many requests in flight; retry after the ``Retry-After`` seconds."""


class InternalError(TastebudError):
    """An unexpected failure (a bug); the server log has the details."""


# The error types of the HTTP API; the first of a status is its main one (a bare 503 is NotReady).
WIRE_ERRORS: tuple[type[TastebudError], ...] = (
    InvalidInput, FilterSyntaxError, PayloadTooLarge, Unauthorized, Forbidden, NotFound,
    MethodNotAllowed, AlreadyExists, TooManyRequests, NotReady, Overloaded, StoreUnavailable,
    InternalError,
)  # fmt: skip
_WIRE = frozenset(WIRE_ERRORS)
# The main type of each status: for an answer whose body names none (a bare 503 is NotReady).
STATUS_TYPES = {cls.status_code: cls for cls in reversed(WIRE_ERRORS)}


def wire_type(error: TastebudError) -> type[TastebudError]:
    """The API error type ``error`` answers as: its class or the nearest listed ancestor
    (``BatchFailed`` answers ``InvalidInput``); :class:`InternalError` for none."""
    for cls in type(error).__mro__:
        if cls in _WIRE:
            return cls
    return InternalError
