"""Campaigns: ``tastebud campaigns create|list|show|update|rollback|delete|ask``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tastebud.cli._common import console, die, engine, group_option, print_json, resolve_group
from tastebud.engine import Engine
from tastebud.serving.campaigns import LATEST, CampaignRequest, Promotion

campaigns_app = typer.Typer(
    help="Campaigns: solution versions deployed behind the real-time endpoint.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
CacheTtl = Annotated[
    float | None, typer.Option(help="Seconds an answer is reused (0: off; default 600).")
]
MinInteractions = Annotated[
    int | None,
    typer.Option(help="Below this many interactions the rule engine answers (default 1000)."),
]
RulesOrder = Annotated[
    str | None, typer.Option(help="Rule engine order: popularity, trending or newest.")
]
RulesFilter = Annotated[
    str | None, typer.Option(help="A filter of the group every rule-based answer obeys.")
]
Fallback = Annotated[
    str | None,
    typer.Option(
        help="What answers when the model cannot (load or scoring error, past --deadline-ms): "
        '"rules" (the rule engine) or "none" (the error; the default).'
    ),
]
DeadlineMs = Annotated[
    float | None,
    typer.Option(help="A model answer slower than this many ms is replaced by the fallback's."),
]
PrecomputedUrl = Annotated[
    str | None,
    typer.Option(
        "--precomputed",
        help="redis://host[:port][/db] holding a batch job's answers, served when the model "
        'cannot answer ("off": remove it).',
    ),
]
PrecomputedPrefix = Annotated[
    str | None, typer.Option(help="Key prefix of the precomputed answers (default recs:).")
]
PrecomputedOverloadShare = Annotated[
    str | None,
    typer.Option(
        help="Answer from Redis once this share of the in-flight limit is busy (default 0.8; "
        '"off": only when the model fails).'
    ),
]


def _config(
    cache_ttl: float | None, min_interactions: int | None, rules: str | None,
    rules_filter: str | None, fallback: str | None = None, deadline_ms: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    config: dict[str, Any] = {}
    if fallback is not None:
        config["fallback"] = fallback
    if deadline_ms is not None:
        config["deadline_ms"] = deadline_ms
    if cache_ttl is not None:
        config["cache_ttl_seconds"] = cache_ttl
    if min_interactions is not None:
        config["min_interactions"] = min_interactions
    if rules is not None or rules_filter is not None:
        config["rules"] = {"order": rules or "popularity", "filter": rules_filter}
    return config


def _precomputed(url: str | None, prefix: str | None, share: str | None) -> dict[str, Any]:
    """The ``precomputed`` setting the options give (``{}``: unchanged)."""
    if url is None:
        if prefix is not None or share is not None:
            die("--precomputed-prefix and --precomputed-overload-share need --precomputed URL")
        return {}
    if url == "off":
        return {"precomputed": None}
    entry: dict[str, Any] = {"url": url}
    if prefix is not None:
        entry["key_prefix"] = prefix
    if share == "off":
        entry["overload_share"] = None
    elif share is not None:
        try:
            entry["overload_share"] = float(share)
        except ValueError:
            die(f"--precomputed-overload-share {share!r}: expected a number in (0, 1] or off")
    return {"precomputed": entry}


def _describe(eng: Engine, group: str, name: str) -> dict[str, Any]:
    described = eng.describe_campaign(group, name)
    record = described["campaign"]
    return {"name": record.name, "solution": record.solution, "deployed": record.deployed,
            "previous": record.previous, "solution_version_id": described["solution_version_id"],
            "source": described["source"], "config": dict(record.config)}  # fmt: skip


def _print(campaigns: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(campaigns if len(campaigns) != 1 else campaigns[0])
        return
    table = Table(title="campaigns")
    for column in ("name", "solution", "deployed", "answering", "source", "previous", "cache s"):
        table.add_column(column)
    for c in campaigns:
        table.add_row(
            c["name"],
            c["solution"],
            c["deployed"],
            c["solution_version_id"] or "-",
            c["source"],
            c["previous"] or "-",
            str(c["config"]["cache_ttl_seconds"]),
        )
    console.print(table)  # fmt: skip


@campaigns_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The campaign's name, e.g. home-page.")],
    solution: Annotated[str, typer.Option(help="The solution to deploy.")],
    version: Annotated[
        str, typer.Option(help='A version id, or "latest" (followed as versions are trained).')
    ] = LATEST,
    cache_ttl: CacheTtl = None,
    min_interactions: MinInteractions = None,
    rules: RulesOrder = None,
    rules_filter: RulesFilter = None,
    fallback: Fallback = None,
    deadline_ms: DeadlineMs = None,
    precomputed: PrecomputedUrl = None,
    precomputed_prefix: PrecomputedPrefix = None,
    precomputed_overload_share: PrecomputedOverloadShare = None,
    replace: Annotated[bool, typer.Option(help="Overwrite a campaign of that name.")] = False,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """Deploy a solution version behind the real-time endpoint."""
    config = _config(cache_ttl, min_interactions, rules, rules_filter, fallback, deadline_ms)
    config |= _precomputed(precomputed, precomputed_prefix, precomputed_overload_share)
    with engine(ctx) as eng:
        group_name = resolve_group(ctx, group)
        eng.create_campaign(group_name, name, solution, version=version, config=config,
                            replace=replace)  # fmt: skip
        _print([_describe(eng, group_name, name)], as_json)


@campaigns_app.command("list")
def list_(
    ctx: typer.Context, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """Campaigns, what they deploy and what answers now."""
    with engine(ctx) as eng:
        group_name = resolve_group(ctx, group)
        found = [_describe(eng, group_name, c.name) for c in eng.list_campaigns(group_name)]
    if as_json:
        print_json(found)
    else:
        _print(found, False)


@campaigns_app.command("show")
def show(
    ctx: typer.Context, name: str, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """One campaign."""
    with engine(ctx) as eng:
        _print([_describe(eng, resolve_group(ctx, group), name)], as_json)


@campaigns_app.command("update")
def update(
    ctx: typer.Context,
    name: str,
    version: Annotated[str | None, typer.Option(help='Deploy this version (or "latest").')] = None,
    cache_ttl: CacheTtl = None,
    min_interactions: MinInteractions = None,
    rules: RulesOrder = None,
    rules_filter: RulesFilter = None,
    fallback: Fallback = None,
    deadline_ms: DeadlineMs = None,
    precomputed: PrecomputedUrl = None,
    precomputed_prefix: PrecomputedPrefix = None,
    precomputed_overload_share: PrecomputedOverloadShare = None,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """Deploy another version (the current one becomes the rollback target) or change settings;
    no request fails during the switch."""
    config = _config(cache_ttl, min_interactions, rules, rules_filter, fallback, deadline_ms)
    config |= _precomputed(precomputed, precomputed_prefix, precomputed_overload_share)
    if version is None and not config:
        die("nothing to change: give --version or a setting")
    with engine(ctx) as eng:
        group_name = resolve_group(ctx, group)
        eng.update_campaign(group_name, name, version=version, config=config)
        _print([_describe(eng, group_name, name)], as_json)


@campaigns_app.command("rollback")
def rollback(
    ctx: typer.Context, name: str, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """Back to the previous deployment (again: forward to the one rolled back from)."""
    with engine(ctx) as eng:
        group_name = resolve_group(ctx, group)
        eng.rollback_campaign(group_name, name)
        _print([_describe(eng, group_name, name)], as_json)


@campaigns_app.command("delete")
def delete(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    """Stop serving a campaign (its solution and versions stay)."""
    with engine(ctx) as eng:
        eng.delete_campaign(resolve_group(ctx, group), name)
    console.print(f"deleted campaign {name}")


@campaigns_app.command("ask")
def ask(
    ctx: typer.Context,
    name: str,
    user: Annotated[str | None, typer.Option(help="User id (omit for a new visitor).")] = None,
    item: Annotated[str | None, typer.Option(help="Items like this one.")] = None,
    num_results: Annotated[int, typer.Option("--num-results", "-n")] = 10,
    promote: Annotated[
        str | None, typer.Option(help="NAME:PERCENT:FILTER, e.g. house:20:in-house.")
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Say why each item was recommended (its reasons).")
    ] = False,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """A campaign's answer, as the HTTP endpoint gives it."""
    promotions: tuple[Promotion, ...] = ()
    if promote is not None:
        parts = promote.split(":")
        if len(parts) != 3 or not parts[1].isdigit():
            die(f"--promote {promote!r}: expected NAME:PERCENT:FILTER")
        promotions = (Promotion(parts[0], int(parts[1]), parts[2]),)
    request = CampaignRequest(user_id=user, item_id=item, k=num_results, promotions=promotions,
                              explain=explain)  # fmt: skip
    with engine(ctx) as eng:
        answer = eng.campaign_answer(resolve_group(ctx, group), name, request)
    if as_json:
        print_json(answer)
        return
    table = Table(title=f"{name}: {answer['source']} {answer['solutionVersionId'] or ''}")
    for column in ("#", "id", "score", "promotion", *(("why",) if explain else ())):
        table.add_column(column)
    for rank, item_ in enumerate(answer["itemList"], 1):
        score = "-" if item_["score"] is None else f"{item_['score']:.4f}"
        why = ("; ".join(r["text"] for r in item_.get("reasons", ())),) if explain else ()
        table.add_row(str(rank), item_["itemId"], score, item_.get("promotionName", ""), *why)
    console.print(table)
