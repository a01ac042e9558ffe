"""Templates, the page list and the error pages: every console answer is rendered here."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from tastebud.store import TokenRecord

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Nav:
    """A page of the console's menu."""

    slug: str  # its path under /console/groups/{group}/
    title: str
    admin: bool = True  # False: a recommend token may open it


PAGES = (
    Nav("", "Overview"),
    Nav("data", "Data"),
    Nav("solutions", "Solutions"),
    Nav("try", "Try it", admin=False),
    Nav("filters", "Filters"),
    Nav("campaigns", "Campaigns"),
    Nav("experiments", "Experiments"),
    Nav("messages", "Messages"),
    Nav("reels", "Reels", admin=False),
)


def _when(epoch: float | None) -> str:
    if not epoch:
        return "—"
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _signed_percent(value: float | None) -> str:
    """A relative lift (0.052 -> ``+5.2%``)."""
    return "—" if value is None else f"{100 * value:+.1f}%"


def _p_value(value: float | None) -> str:
    """Four decimals; below 0.0001 it says so rather than ``0.0000``."""
    return "—" if value is None else ("< 0.0001" if value < 1e-4 else f"{value:.4f}")


def _base64(text: str) -> str:
    """UTF-8 text as base64, for a ``data:`` download link."""
    return base64.b64encode(str(text).encode()).decode("ascii")


def _points(value: float | None) -> str:
    """A difference of two rates, in percentage points (0.052 -> ``+5.2 pt``)."""
    return "—" if value is None else f"{100 * value:+.1f} pt"


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters |= {
    "when": _when, "number": _number, "percent": _percent, "lift": _signed_percent,
    "points": _points, "pvalue": _p_value, "b64": _base64,
}  # fmt: skip


def visible_pages(token: TokenRecord) -> list[Nav]:
    return [page for page in PAGES if token.scope == "admin" or not page.admin]


def page(
    request: Request,
    template: str,
    *,
    token: TokenRecord,
    group: str,
    **context: Any,
) -> HTMLResponse:
    """A page of ``group`` with the menu ``token`` may see."""
    return templates.TemplateResponse(
        request,
        template,
        {"token": token, "group": group, "pages": visible_pages(token), **context},
    )


def fragment(
    request: Request, template: str, context: Mapping[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A piece of a page, for htmx to swap in."""
    return templates.TemplateResponse(request, template, dict(context), status_code=status_code)


def error(request: Request, status_code: int, kind: str, message: str) -> Response:
    """The API's message for a failure: a fragment for htmx (swapped in where the answer was
    to go), else a page; never a stack trace."""
    context = {"status": status_code, "kind": kind, "message": message}
    name = "_error.html" if request.headers.get("hx-request") else "error.html"
    return templates.TemplateResponse(request, name, context, status_code=status_code)
