"""The OpenAPI document's failure side, derived once from the routes for every operation.

FastAPI documents what a route returns on success. Everything else an operation can answer comes
from rules here, so no route declares it by hand and none is forgotten:

- the token it needs (from its dependencies): ``401``; a scope beyond any token's: ``403``;
  the bearer scheme with the accepted scopes as roles, and ``x-token-scopes``;
- parameters or a body: ``422`` (validation, or the engine's ``InvalidInput``); a path
  parameter: ``404`` (unknown group or resource); a body: ``413`` (the body limit);
  a resource created (``201``): ``409``;
- every path the operations middleware guards: ``429`` and ``503`` with ``Retry-After``;
  every operation: ``500``;
- any other status a route declares (``responses={409: ...}``) gets the same error body.

Each status's body is ``{"error": {"type", "message"}}`` with the status's error types as an
enum (:data:`tastebud.errors.WIRE_ERRORS`), and an example of each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal, get_args

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from tastebud.api.deps import require_admin, require_reader, require_token
from tastebud.api.errors import api_routes
from tastebud.api.models import TokenScope
from tastebud.api.operations import EXEMPT_PATHS
from tastebud.api.routes.health import metrics_access
from tastebud.errors import WIRE_ERRORS, TastebudError

Access = Literal["public", "token", "reader", "admin"]
SCHEME = "HTTPBearer"  # the name FastAPI gives the `HTTPBearer` scheme of `deps`
SCOPES: dict[Access, tuple[str, ...]] = {
    "public": (),
    "token": get_args(TokenScope),
    "reader": ("admin", "recommend"),
    "admin": ("admin",),
}
# When each status answers, and an example message of each of its error types.
DESCRIPTIONS = {
    401: "No bearer token, or an unknown or revoked one.",
    403: "The token lacks the scope this operation needs.",
    404: "The dataset group, or the resource named in the path, does not exist.",
    409: "It exists already (where allowed, send `replace: true` to overwrite it).",
    413: "The request body, or a list in it, is over its limit.",
    422: "A parameter or the body is invalid; the message names the field and the value.",
    429: "The token is over its rate limit: retry after `Retry-After` seconds.",
    500: "An unexpected failure (a bug); the server log has the details.",
    503: "Not ready (no trained version yet, a dependency unavailable), or overloaded: retry "
    "later (after `Retry-After` seconds when given).",
}
EXAMPLES = {
    "InvalidInput": "body.eventList[0].itemId: Field required",
    "FilterSyntaxError": "filterExpression: expected INCLUDE or EXCLUDE at 1:1, got 'SELECT'",
    "PayloadTooLarge": "request body: 1048577 bytes, at most 1048576",
    "Unauthorized": "Authorization: unknown or revoked token",
    "Forbidden": "token 'app' has scope 'ingest'; this needs 'admin'",
    "NotFound": "dataset group 'shop' does not exist",
    "MethodNotAllowed": "Method Not Allowed",
    "AlreadyExists": "dataset group 'shop' already exists",
    "TooManyRequests": "rate limit of 100 requests/s for this token exceeded",
    "NotReady": "campaign 'home': no trained version yet",
    "Overloaded": "server busy (512 requests in flight); retry shortly",
    "StoreUnavailable": "the database cannot be reached now; nothing was written",
    "InternalError": "internal server error (see the server log)",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying (every 503, and TooManyRequests).",
        "schema": {"type": "integer", "minimum": 1},
    }
}
HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}}},
    429: {**_RETRY_AFTER, "Retry-After": {**_RETRY_AFTER["Retry-After"], "required": True}},
    503: _RETRY_AFTER,
}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (FastAPI's, then :func:`complete`)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()  # cached by FastAPI until the routes change
        complete(document, app)  # idempotent: cheap enough to run again
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way


def complete(document: dict[str, Any], app: FastAPI) -> None:
    """Declare the errors and security of every operation of ``app``'s ``document``."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    metrics_public = bool(app.state.settings.api.metrics_public)
    for route, method in _operations(app):
        operation = document["paths"][route.path_format][method]
        access = access_of(route.dependant, metrics_public=metrics_public)
        _declare_security(operation, access)
        declared = _declared_errors(route)
        exempt = route.path in EXEMPT_PATHS
        for status in error_statuses(operation, access, exempt=exempt, declared=declared):
            description = declared.get(status) or DESCRIPTIONS[status]
            operation["responses"][str(status)] = _error_response(status, description, schemas)
        operation["responses"] = dict(sorted(operation["responses"].items()))
    for name in _FASTAPI_VALIDATION:  # replaced by the 422 error body everywhere
        schemas.pop(name, None)
    document["components"]["securitySchemes"][SCHEME]["description"] = (
        "A token made with `tastebud token create` (or `POST /v1/tokens`). Its scope grants: "
        "`admin` everything; `recommend` answers (recommendations, campaigns, experiments, "
        "reels, online features) and writes; `ingest` writes only (events, items, users)."
    )


def access_of(dependant: Dependant, *, metrics_public: bool = False) -> Access:
    """The token an operation needs, from the dependencies it declares."""
    calls = {dep.call for dep in _dependencies(dependant)}
    if require_admin in calls or (metrics_access in calls and not metrics_public):
        return "admin"
    if require_reader in calls:
        return "reader"
    return "token" if require_token in calls else "public"


def error_statuses(
    operation: dict[str, Any], access: Access, *, exempt: bool, declared: Iterable[int] = ()
) -> list[int]:
    """Every error status ``operation`` can answer (see the module's docstring)."""
    parameters = operation.get("parameters", [])
    body = "requestBody" in operation
    rules = {
        401: access != "public",
        403: access in ("reader", "admin"),
        404: any(p["in"] == "path" for p in parameters),
        409: "201" in operation["responses"],
        413: body,
        422: body or bool(parameters),
        429: not exempt,
        500: True,
        503: not exempt,
    }
    return sorted({*declared, *(status for status, applies in rules.items() if applies)})


def error_types(status: int) -> list[type[TastebudError]]:
    """The API error types answered with ``status``, the main one first."""
    return [cls for cls in WIRE_ERRORS if cls.status_code == status]


def _declare_security(operation: dict[str, Any], access: Access) -> None:
    scopes = SCOPES[access]
    operation["x-token-scopes"] = list(scopes)
    if access == "public":
        operation.pop("security", None)
        return
    # OpenAPI 3.1: a non-OAuth scheme may list roles; alternatives are separate requirements.
    operation["security"] = (
        [{SCHEME: []}] if access == "token" else [{SCHEME: [scope]} for scope in scopes]
    )
    needs = " or ".join(f"`{scope}`" for scope in scopes) if access != "token" else "any scope"
    note = f"Token: {needs}."
    description = operation.get("description", "")
    if note not in description:
        operation["description"] = f"{description}\n\n{note}".strip()


def _declared_errors(route: Any) -> dict[int, str]:
    """The error statuses the route declares itself, with their descriptions."""
    return {int(status): str(response.get("description", ""))
            for status, response in route.responses.items()
            if str(status).isdigit() and int(status) >= 400}  # fmt: skip


def _error_response(status: int, description: str, schemas: dict[str, Any]) -> dict[str, Any]:
    types = [cls.__name__ for cls in error_types(status)]
    assert types, f"HTTP {status}: no error type in tastebud.errors.WIRE_ERRORS answers it"
    name = f"Error{status}"
    schemas[name] = _error_schema(status, types)
    response: dict[str, Any] = {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": f"#/components/schemas/{name}"},
                "examples": {
                    type_: {"value": {"error": {"type": type_, "message": EXAMPLES[type_]}}}
                    for type_ in types
                },
            }
        },
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


def _error_schema(status: int, types: list[str]) -> dict[str, Any]:
    return {
        "title": f"Error{status}",
        "description": f"HTTP {status}: {', '.join(types)}.",
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "additionalProperties": False,
                "properties": {
                    "type": {"type": "string", "enum": types},
                    "message": {"type": "string"},
                },
            }
        },
    }


def _operations(app: FastAPI) -> Iterator[tuple[Any, str]]:
    """Each documented route and method."""
    for route in api_routes(app.routes):
        original = getattr(route, "original_route", route)
        if isinstance(original, APIRoute) and route.include_in_schema:
            for method in sorted(route.methods):
                yield route, method.lower()


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _dependencies(dependency)
