"""The exceptions tastebud raises, so callers know what to catch.

TastebudError
├── InvalidInput          bad data or arguments (HTTP 422)
│   ├── FilterSyntaxError
│   └── PayloadTooLarge   (HTTP 413)
├── NotFound              (HTTP 404)
├── AlreadyExists         (HTTP 409)
├── NotReady              (HTTP 503, with Retry-After)
│   └── StoreUnavailable  the database cannot be reached now
└── Forbidden             token lacks the scope (HTTP 403)
"""

from __future__ import annotations


class TastebudError(Exception):
    """Base of every error tastebud raises on purpose."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(TastebudError):
    """The caller sent something malformed; the message names the field and value."""

    status_code = 422


class FilterSyntaxError(InvalidInput):
    """A filter expression does not parse."""


class PayloadTooLarge(InvalidInput):
    status_code = 413


class NotFound(TastebudError):
    status_code = 404


class AlreadyExists(TastebudError):
    status_code = 409


class NotReady(TastebudError):
    status_code = 503
    retry_after_seconds = 1.0  # the API's Retry-After header


class StoreUnavailable(NotReady):
    """The database cannot be reached (or did not answer in time); nothing was written. Retry
    after ``retry_after_seconds``: the server reconnects by itself when it is back."""


class Forbidden(TastebudError):
    status_code = 403
