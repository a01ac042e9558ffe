"""Messages: ``tastebud messages create|preview|send|show|list|report|delete``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tastebud.cli._common import (
    console,
    die,
    engine,
    existing_file,
    group_option,
    print_json,
    resolve_group,
)
from tastebud.messaging import read_segment

messages_app = typer.Typer(
    help="Messages: a segment, templates (or a language model), a channel; sent and tracked.",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@messages_app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    template: Annotated[Path, typer.Option(help="Jinja2 template (.html.j2: an HTML email).")],
    channel: Annotated[str, typer.Option(help="email, sms or webhook (push).")],
    item: Annotated[str | None, typer.Option(help="The item the message is about.")] = None,
    segment_file: Annotated[
        Path | None, typer.Option(help='JSON Lines: `batch segment` answers or {"userId"}.')
    ] = None,
    solution: Annotated[
        str | None, typer.Option(help="Item-affinity solution: the segment and recommendations.")
    ] = None,
    top_users: Annotated[int, typer.Option(help="Users in the item's segment.")] = 100,
    provider: Annotated[
        str, typer.Option(help="template, or llm (TASTEBUD_MESSAGING__LLM_URL).")
    ] = "template",
    treatment: Annotated[
        list[str] | None, typer.Option(help="NAME=FILE.j2: another variant (A/B).")
    ] = None,
    banned_word: Annotated[list[str] | None, typer.Option(help="Drafts with it fail.")] = None,
    activity: Annotated[
        str | None, typer.Option(help="Activity id (default: the channel).")
    ] = None,
    address_field: Annotated[
        str | None, typer.Option(help="User field with the address (default EMAIL / PHONE).")
    ] = None,
    group: str | None = group_option(),
) -> None:
    """Create a message for an item's top users (--item, --solution) or a segment file."""
    if item is None and segment_file is None:
        die("give --item ID (with --solution) or --segment-file FILE")
    body: dict[str, Any] = {
        "channel": channel, "provider": provider, "item_id": item, "solution": solution,
        "top_users": top_users, "activity": activity, "address_field": address_field,
        "banned_words": banned_word or [], "html": template.name.endswith((".html.j2", ".html")),
        "templates": {"default": _read(template), **_treatments(treatment)},
    }  # fmt: skip
    with engine(ctx) as eng:
        if segment_file is not None:
            lines = existing_file(segment_file).read_text(encoding="utf-8").splitlines()
            segment_item, body["users"] = read_segment(lines, source=str(segment_file))
            body["item_id"] = item or segment_item
        record = eng.messaging.create(resolve_group(ctx, group), name,
                                      {k: v for k, v in body.items() if v is not None})  # fmt: skip
    console.print(f"[green]message {name!r}[/] for {len(record.body['users'])} users "
                  f"by {channel}; `tastebud messages preview {name}`")  # fmt: skip


def _read(path: Path) -> str:
    return existing_file(path).read_text(encoding="utf-8")


def _treatments(values: list[str] | None) -> dict[str, str]:
    found = {}
    for value in values or []:
        name, sep, file = value.partition("=")
        if not sep or not name or name == "default":
            die(f"--treatment {value!r}: expected NAME=FILE.j2 (NAME not 'default')")
        found[name] = _read(Path(file))
    return found


@messages_app.command("preview")
def preview(
    ctx: typer.Context, name: str,
    user: Annotated[str | None, typer.Option(help="Default: the first of the audience.")] = None,
    group: str | None = group_option(), as_json: JsonFlag = False,
) -> None:  # fmt: skip
    """The draft one user would get, and what its checks say. Sends nothing."""
    with engine(ctx) as eng:
        draft = eng.messaging.preview(resolve_group(ctx, group), name, user_id=user)
    if as_json:
        print_json(draft)
        return
    console.print(f"[bold]to {draft['user']}[/] ({draft['channel']}, treatment "
                  f"{draft['treatment']}, by {draft['provider']})", highlight=False)  # fmt: skip
    if draft["subject"]:
        console.print(f"Subject: {draft['subject']}", highlight=False, markup=False)
    console.print(draft["body"], highlight=False, markup=False)
    for problem in draft["problems"]:
        console.print(f"[red]check failed:[/] {problem}", highlight=False)
    for reason in draft["fallback"]:
        console.print(f"[yellow]model draft replaced:[/] {reason}", highlight=False)


@messages_app.command("send")
def send(
    ctx: typer.Context, name: str,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Draft and check only.")] = False,
    group: str | None = group_option(), as_json: JsonFlag = False,
) -> None:  # fmt: skip
    """Send to every user not sent to yet (running it again never sends twice)."""
    with engine(ctx) as eng:
        result = eng.messaging.send(resolve_group(ctx, group), name, dry_run=dry_run)
    if as_json:
        print_json(result.to_dict())
        return
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.counts.items())) or "nobody"
    console.print(f"[green]{name}[/]: {counts} ({result.seconds:.1f} s)")


@messages_app.command("show")
def show(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    """A message's definition (audience, templates, channel) as JSON."""
    with engine(ctx) as eng:
        record = eng.messaging.get(resolve_group(ctx, group), name)
    print_json({"name": record.name, "created_at": record.created_at, **record.body})


@messages_app.command("list")
def list_messages(ctx: typer.Context, group: str | None = group_option()) -> None:
    with engine(ctx) as eng:
        records = eng.messaging.list(resolve_group(ctx, group))
    table = Table("name", "channel", "provider", "item", "users", "treatments")
    for r in records:
        table.add_row(r.name, r.body["channel"], r.body.get("provider", "template"),
                      r.body.get("item_id") or "", str(len(r.body["users"])),
                      ", ".join(sorted(r.body["templates"])))  # fmt: skip
    console.print(table)


@messages_app.command("delete")
def delete(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    with engine(ctx) as eng:
        eng.messaging.delete(resolve_group(ctx, group), name)
    console.print(f"message {name!r} deleted")


@messages_app.command("report")
def report(
    ctx: typer.Context, name: str, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """Sends, deliveries, unique/total opens and clicks, rates per activity and treatment
    (NAME may also be a campaign or journey id that app events named)."""
    with engine(ctx) as eng:
        result = eng.messaging.report(resolve_group(ctx, group), name)
    if as_json:
        print_json(result)
        return
    print_report(result)


def print_report(result: dict[str, Any]) -> None:
    table = Table(
        "",
        "sends",
        "deliveries",
        "opens (unique/total)",
        "clicks (unique/total)",
        "open rate",
        "click rate",
        "unsubscribes",
        title=f"campaign {result['campaign']}",
    )
    rows = [("total", result["total"])]
    rows += [(f"activity {k}", v) for k, v in result["activities"].items()]
    rows += [(f"treatment {k}", v) for k, v in result["treatments"].items()]
    for label, row in rows:
        table.add_row(label, str(row["sends"]), str(row["deliveries"]),
                      f"{row['opens']['unique']}/{row['opens']['total']}",
                      f"{row['clicks']['unique']}/{row['clicks']['total']}",
                      _rate(row["rates"]["open"]), _rate(row["rates"]["click"]),
                      str(row["unsubscribes"]))  # fmt: skip
    console.print(table)
    for entry in result["comparison"]:
        open_ = entry["open"]
        if open_["difference"] is not None:
            console.print(f"treatment {entry['treatment']} vs {entry['against']}: open rate "
                          f"{open_['difference']:+.1%} (p = {open_['p_value']:.3f})")  # fmt: skip
    replaced = result.get("deliveries", {}).get("llm_drafts_replaced", 0)
    if replaced:
        console.print(f"[yellow]{replaced} model drafts failed their checks twice and were "
                      "replaced by the template version[/]")  # fmt: skip


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
