"""Messages: the group's message campaigns, each one's engagement report (sends, deliveries,
opens, clicks and their rates, treatments compared), its deliveries, a user's preview,
and a dry run or a send (issue 16's messaging service, as ``…/messages`` over HTTP)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import EngineDep
from tastebud.api.routes.messages import message_out
from tastebud.console import render
from tastebud.console.service import paginate
from tastebud.console.session import AdminToken, Form

router = APIRouter(prefix="/groups/{group}/messages")


@router.get("")
def messages(group: str, request: Request, engine: EngineDep, token: AdminToken,
             page: str | None = None) -> HTMLResponse:  # fmt: skip
    engine.get_group(group)
    listed = paginate(engine.messaging.list(group), page)
    shown = [message_out(record) for record in listed.rows]
    return render.page(request, "messages.html", token=token, group=group, active="messages",
                       messages=listed, shown=shown)  # fmt: skip


@router.get("/{name}")
def message(group: str, name: str, request: Request, engine: EngineDep, token: AdminToken,
            user: str | None = None) -> HTMLResponse:  # fmt: skip
    """The message, its report (as ``GET …/messages/{name}/report``) and a preview form."""
    record = engine.messaging.get(group, name)
    return render.page(
        request, "message.html", token=token, group=group, active="messages",
        message=message_out(record), audience=record.body["users"][:5], user=user,
        report=engine.messaging.report(group, name),
    )  # fmt: skip


@router.get("/{name}/preview")
async def preview(group: str, name: str, request: Request, engine: EngineDep,
                  token: AdminToken, user: str | None = None) -> HTMLResponse:  # fmt: skip
    """The draft a user would get and its checks; nothing is sent (``GET …/preview``)."""
    draft = await run_in_threadpool(
        engine.messaging.preview, group, name, user_id=(user or "").strip() or None
    )
    html = bool(engine.messaging.get(group, name).body.get("html"))
    return render.fragment(request, "_message_preview.html", {"draft": draft, "html": html})


@router.post("/{name}/send")
async def send(group: str, name: str, request: Request, engine: EngineDep, token: AdminToken,
               form: Form) -> HTMLResponse:  # fmt: skip
    """Send to every user not sent to yet, or only draft and check (``dry_run``), as
    ``POST …/messages/{name}/send`` does; a second send sends nothing twice."""
    dry_run = bool(form.get("dry_run"))
    result = await run_in_threadpool(engine.messaging.send, group, name, dry_run=dry_run)
    return render.fragment(request, "_message_sent.html", {"result": result.to_dict()})
