"""Ask a trained solution: ``tastebud recommend``, ``rank``, ``similar-items``, ``similar-users``,
``segment``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tastebud.cli._common import (
    console,
    die,
    engine,
    group_option,
    key_values,
    print_json,
    resolve_group,
)
from tastebud.recipes.base import MAX_HORIZON
from tastebud.serving import Answer, Scored, VersionRef

Solution = Annotated[str | None, typer.Option(help="Solution whose newest version answers.")]
VersionId = Annotated[str | None, typer.Option("--version", help="Or this solution version.")]
Count = Annotated[int, typer.Option("--num-results", "-n", help="How many results (1-500).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
FilterName = Annotated[str | None, typer.Option("--filter", help="A filter of the group, by name.")]
Explain = Annotated[
    bool, typer.Option("--explain", help="Say why each item was recommended (its reasons).")
]
FilterValue = Annotated[
    list[str] | None,
    typer.Option("--filter-value", help="KEY=V1,V2: values of the filter's $KEY (repeatable)."),
]


def _values(values: list[str] | None) -> dict[str, str]:
    """``KEY=V1,V2`` options; the filter splits the values on commas (quotes keep one whole)."""
    return dict(key_values(values, "--filter-value"))


def _ref(solution: str | None, version: str | None) -> VersionRef:
    if solution is None and version is None:
        die("give --solution NAME or --version ID")
    return {"solution": solution, "version_id": version}


def _show(answer: Answer, *, what: str, as_json: bool) -> None:
    explained = any(r.reasons is not None for r in answer.results)
    if as_json:
        results = [{"id": r.id, "score": r.score} | _reasons(r) for r in answer.results]
        intent = {} if answer.intent is None else {"intent": answer.intent}
        print_json({"recommendationId": answer.recommendation_id,
                    "solutionVersionId": answer.version_id, "results": results}
                   | intent)  # fmt: skip
        return
    table = Table(title=f"{what} (version {answer.version_id})")
    for column in ("#", "id", "score", *(("why",) if explained else ())):
        table.add_column(column)
    for rank, result in enumerate(answer.results, 1):
        score = "-" if result.score is None else f"{result.score:.4f}"
        why = ("; ".join(r.text for r in result.reasons or ()),) if explained else ()
        table.add_row(str(rank), result.id, score, *why)
    console.print(table)
    for head, values in (answer.intent or {}).items():
        shown = ", ".join(f"{name} {p:.0%}" for name, p in values.items()) or "-"
        console.print(f"intent {head}: {shown}")


def _reasons(result: Scored) -> dict[str, Any]:
    if result.reasons is None:
        return {}
    return {"reasons": [reason.as_dict() for reason in result.reasons]}


def recommend(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="User id (omit for a new visitor).")] = None,
    solution: Solution = None,
    version: VersionId = None,
    num_results: Count = 10,
    include_seen: Annotated[bool, typer.Option(help="Keep items the user already had.")] = False,
    filter_name: FilterName = None,
    filter_value: FilterValue = None,
    explain: Explain = False,
    horizon: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_HORIZON,
            help="Rank for the user's next N actions (a sequential version trained with "
            "predictNext >= N).",
        ),
    ] = 1,
    include_intent: Annotated[
        bool, typer.Option("--include-intent", help="Show the predicted intent (intent heads).")
    ] = False,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """Items for a user, from the user's latest events (``--horizon N``: for the next N)."""
    with engine(ctx) as eng:
        answer = eng.recommender.recommend(
            resolve_group(ctx, group), _ref(solution, version), user_id=user, k=num_results,
            exclude_seen=not include_seen, filter_name=filter_name,
            filter_values=_values(filter_value), explain=explain, horizon=horizon,
            include_intent=include_intent,
        )  # fmt: skip
    _show(answer, what=f"for {user or 'a new visitor'}", as_json=as_json)


def rank(
    ctx: typer.Context,
    items: Annotated[str, typer.Option(help="Comma-separated item ids to order.")],
    user: Annotated[str | None, typer.Option(help="User id.")] = None,
    solution: Solution = None,
    version: VersionId = None,
    filter_name: FilterName = None,
    filter_value: FilterValue = None,
    explain: Explain = False,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """Order a list of items for a user (unknown items are kept, last; items the filter does
    not allow are dropped)."""
    item_ids = [i.strip() for i in items.split(",") if i.strip()]
    with engine(ctx) as eng:
        answer = eng.recommender.rank(
            resolve_group(ctx, group), _ref(solution, version), user_id=user, item_ids=item_ids,
            filter_name=filter_name, filter_values=_values(filter_value), explain=explain,
        )  # fmt: skip
    _show(answer, what=f"ranking for {user or 'a new visitor'}", as_json=as_json)


def similar_items(
    ctx: typer.Context,
    item: Annotated[str, typer.Option(help="Item id.")],
    solution: Solution = None,
    version: VersionId = None,
    num_results: Count = 10,
    user: Annotated[str | None, typer.Option(help="User whose events filters read.")] = None,
    filter_name: FilterName = None,
    filter_value: FilterValue = None,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """Items like this one."""
    with engine(ctx) as eng:
        answer = eng.recommender.similar_items(
            resolve_group(ctx, group), _ref(solution, version), item_id=item, k=num_results,
            user_id=user, filter_name=filter_name, filter_values=_values(filter_value),
        )  # fmt: skip
    _show(answer, what=f"like {item}", as_json=as_json)


def similar_users(
    ctx: typer.Context,
    user: Annotated[str, typer.Option(help="User id.")],
    solution: Solution = None,
    version: VersionId = None,
    num_results: Count = 10,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """People like this person."""
    with engine(ctx) as eng:
        answer = eng.recommender.similar_users(
            resolve_group(ctx, group), _ref(solution, version), user_id=user, k=num_results
        )
    _show(answer, what=f"users like {user}", as_json=as_json)


def segment(
    ctx: typer.Context,
    item: Annotated[str | None, typer.Option(help="Item id.")] = None,
    attribute: Annotated[str | None, typer.Option(help="FIELD=value, e.g. GENRES=Comedy.")] = None,
    solution: Solution = None,
    version: VersionId = None,
    num_results: Count = 100,
    filter_name: FilterName = None,
    filter_value: FilterValue = None,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """The users most likely to want an item or an attribute value (item-affinity), limited by
    a UserID filter."""
    with engine(ctx) as eng:
        answer = eng.recommender.users_for_item(
            resolve_group(ctx, group), _ref(solution, version), item_id=item,
            attribute=attribute, k=num_results, filter_name=filter_name,
            filter_values=_values(filter_value),
        )  # fmt: skip
    _show(answer, what=f"segment for {item or attribute}", as_json=as_json)
