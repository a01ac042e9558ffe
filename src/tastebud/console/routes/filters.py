"""Filters: the group's filters, an editor that validates as you type (the parser's message),
saving, and trying a filter on a user."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tastebud.api.deps import EngineDep
from tastebud.api.routes.filters import filter_out
from tastebud.console import render
from tastebud.console.service import paginate
from tastebud.console.session import AdminToken, Form
from tastebud.errors import InvalidInput
from tastebud.filters import parameters
from tastebud.filters import render as render_filter

router = APIRouter(prefix="/groups/{group}/filters")


@router.get("")
def filters(group: str, request: Request, engine: EngineDep, token: AdminToken,
            page: str | None = None) -> HTMLResponse:  # fmt: skip
    engine.get_group(group)
    listed = [filter_out(f) for f in engine.list_filters(group)]
    return render.page(
        request, "filters.html", token=token, group=group, active="filters",
        filters=paginate(listed, page), campaigns=[c.name for c in engine.list_campaigns(group)],
    )  # fmt: skip


@router.post("/validate")
def validate(group: str, request: Request, engine: EngineDep, token: AdminToken,
             form: Form) -> HTMLResponse:  # fmt: skip
    """The check ``POST …/filters/validate`` makes: OK with the normalized expression and its
    parameters, or the parser's (or the schema check's) message, shown as typed."""
    expression = form.get("expression", "")
    if not expression.strip():
        raise InvalidInput("filterExpression: write an expression, e.g. "
                           'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")')  # fmt: skip
    tree = engine.validate_filter(group, expression)
    checked = {"expression": render_filter(tree), "parameters": parameters(tree)}
    return render.fragment(request, "_filter_check.html", {"checked": checked})


@router.post("")
def save(group: str, request: Request, engine: EngineDep, token: AdminToken,
         form: Form) -> HTMLResponse:  # fmt: skip
    """Save (or replace, when asked) a filter; the answer is the updated list."""
    engine.create_filter(group, form.get("name", "").strip(), form.get("expression", ""),
                         replace=bool(form.get("replace")))  # fmt: skip
    listed = [filter_out(f) for f in engine.list_filters(group)]
    context = {"group": group, "filters": paginate(listed, None), "saved": form.get("name")}
    return render.fragment(request, "_filters.html", context, status_code=201)
