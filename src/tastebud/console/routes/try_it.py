"""Try it: ask a campaign or a solution for a user (or like an item), see the answer with the
items' fields, scores, source and reasons; send an event and see the answer change.

A ``recommend`` token may use this page: it reads answers and writes events, as the API lets
such a token do. The lists of campaigns, solutions and filters to pick from are admin reads,
so only an admin sees them.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import EngineDep
from tastebud.console import render
from tastebud.console.service import Ask, answer, send_event
from tastebud.console.session import Form, ReaderToken

router = APIRouter(prefix="/groups/{group}/try")


@router.get("")
def try_page(
    group: str, request: Request, engine: EngineDep, token: ReaderToken,
    campaign: str | None = None, solution: str | None = None, user: str | None = None,
    filter: str | None = None,
) -> HTMLResponse:  # fmt: skip
    engine.get_group(group)
    admin = token.scope == "admin"
    choices = {
        "campaigns": [c.name for c in engine.list_campaigns(group)] if admin else [],
        "solutions": [s.name for s in engine.list_solutions(group)] if admin else [],
        "filters": [f.name for f in engine.list_filters(group)] if admin else [],
    }
    target = "solution" if solution and not campaign else "campaign"
    name = solution if target == "solution" else campaign
    if name is None and admin:
        listed = choices["campaigns"] if target == "campaign" else choices["solutions"]
        name = listed[0] if listed else None
    return render.page(
        request, "try.html", token=token, group=group, active="try", target=target, name=name,
        user=user, filter=filter, **choices,
    )  # fmt: skip


@router.post("/answer")
async def ask(group: str, request: Request, engine: EngineDep, token: ReaderToken,
              form: Form) -> HTMLResponse:  # fmt: skip
    question = Ask.from_form(form)
    view = await run_in_threadpool(answer, engine, group, question)
    return render.fragment(request, "_answer.html", {"group": group, "view": view, "sent": None})


@router.post("/event")
async def event(group: str, request: Request, engine: EngineDep, token: ReaderToken,
                form: Form) -> HTMLResponse:  # fmt: skip
    """Send the event, then ask again: the new answer reflects it."""
    question = Ask.from_form(form)
    await run_in_threadpool(send_event, engine, group, form)
    view = await run_in_threadpool(answer, engine, group, question)
    sent = {"item": form.get("event_item_id"), "type": form.get("event_type") or None}
    return render.fragment(request, "_answer.html", {"group": group, "view": view, "sent": sent})
