"""tastebud: a self-hosted personalization engine."""

from importlib.metadata import PackageNotFoundError, version

from tastebud.client import Client
from tastebud.errors import (
    AlreadyExists,
    FilterSyntaxError,
    Forbidden,
    InternalError,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    TastebudError,
    TooManyRequests,
    Unauthorized,
)

try:
    __version__ = version("tastebud")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = [
    "AlreadyExists",
    "Client",
    "FilterSyntaxError",
    "Forbidden",
    "InternalError",
    "InvalidInput",
    "MethodNotAllowed",
    "NotFound",
    "NotReady",
    "Overloaded",
    "PayloadTooLarge",
    "TastebudError",
    "TooManyRequests",
    "Unauthorized",
    "__version__",
]
