"""Experiments: ``tastebud experiments create|start|stop|show|list|ask|report|delete``, and
metric attributions: ``tastebud metrics create|list|delete|report``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tastebud.cli._common import console, engine, group_option, print_json
from tastebud.cli._common import resolve_group as _group
from tastebud.experiments import parse_arm_option
from tastebud.serving.campaigns import CampaignRequest

experiments_app = typer.Typer(
    help="A/B tests between campaigns: arms by a hash of the user, outcomes from events.",
    no_args_is_help=True,
)
metrics_app = typer.Typer(
    help="Metric attributions: SUM(Items.FIELD) or SAMPLECOUNT() of an event type, per "
    "recommendation source (campaign, experiment arm, rules, promotion).",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@experiments_app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    arm: Annotated[
        list[str], typer.Option(help="NAME=CAMPAIGN:PERCENT, at least two summing to 100.")
    ],
    metric: Annotated[
        str | None, typer.Option(help="The event type that is an outcome (default: any).")
    ] = None,
    attribution_window: Annotated[
        str, typer.Option(help="How long after an answer an event without its id counts.")
    ] = "24h",
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """A draft experiment (the arm named control, else the first, is the baseline)."""
    with engine(ctx) as eng:
        arms = dict(parse_arm_option(value) for value in arm)
        record = eng.experiments.create(_group(ctx, group), name, arms, metric=metric,
                                        attribution_window=attribution_window)  # fmt: skip
        shown = eng.experiments.describe(record)
    _show(shown, as_json)


@experiments_app.command("start")
def start(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    """draft -> running: answers are split by user and logged as exposures."""
    with engine(ctx) as eng:
        eng.experiments.start(_group(ctx, group), name)
    console.print(f"experiment {name!r} running")


@experiments_app.command("stop")
def stop(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    """running -> stopped: the control arm answers everyone, nothing more is logged."""
    with engine(ctx) as eng:
        eng.experiments.stop(_group(ctx, group), name)
    console.print(f"experiment {name!r} stopped")


@experiments_app.command("show")
def show(
    ctx: typer.Context, name: str, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    with engine(ctx) as eng:
        shown = eng.experiments.describe(eng.experiments.get(_group(ctx, group), name))
    _show(shown, as_json)


def _show(shown: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(shown)
        return
    arms = ", ".join(f"{a['name']}={a['campaign']}:{a['weight']:g}" for a in shown["arms"])
    console.print(f"[bold]{shown['name']}[/] ({shown['state']}): {arms}; metric "
                  f"{shown['metric'] or 'any event'}, window "
                  f"{shown['attribution_window_seconds']} s", highlight=False)  # fmt: skip


@experiments_app.command("list")
def list_experiments(
    ctx: typer.Context, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    with engine(ctx) as eng:
        shown = [eng.experiments.describe(r) for r in eng.experiments.list(_group(ctx, group))]
    if as_json:
        print_json(shown)
        return
    table = Table("name", "state", "arms", "metric", "window (s)")
    for e in shown:
        arms = ", ".join(f"{a['name']}={a['campaign']}:{a['weight']:g}" for a in e["arms"])
        table.add_row(e["name"], e["state"], arms, e["metric"] or "any",
                      str(e["attribution_window_seconds"]))  # fmt: skip
    console.print(table)


@experiments_app.command("delete")
def delete(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    """Remove an experiment and its exposures (events stay)."""
    with engine(ctx) as eng:
        eng.experiments.delete(_group(ctx, group), name)
    console.print(f"experiment {name!r} deleted")


@experiments_app.command("ask")
def ask(
    ctx: typer.Context,
    name: str,
    user: Annotated[str, typer.Option(help="User id (arms are assigned by user).")],
    num_results: Annotated[int, typer.Option("--num-results", "-n")] = 10,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """The experiment's answer for a user, as the HTTP endpoint gives it (logged as an
    exposure while running)."""
    with engine(ctx) as eng:
        answer = eng.experiments.recommend(
            _group(ctx, group), name, CampaignRequest(user_id=user, k=num_results)
        )
    if as_json:
        print_json(answer)
        return
    items = ", ".join(i["itemId"] for i in answer["itemList"])
    console.print(f"arm {answer['arm']} ({answer['campaign']}, {answer['source']}): {items}",
                  highlight=False)  # fmt: skip


@experiments_app.command("report")
def report(
    ctx: typer.Context,
    name: str,
    cuped: Annotated[bool, typer.Option(help="Add CUPED-adjusted lifts.")] = True,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """Per arm: users, exposures, conversions, rates, values, lift over the control with its
    95% interval and p-value; the sample-ratio check; CUPED."""
    with engine(ctx) as eng:
        result = eng.experiments.report(_group(ctx, group), name, cuped=cuped)
    if as_json:
        print_json(result)
        return
    print_report(result)


def print_report(result: dict[str, Any]) -> None:
    table = Table("arm", "campaign", "users", "exposures", "conversions", "rate", "mean value",
                  "lift (95% CI)", "p", title=f"experiment {result['experiment']} "
                  f"({result['state']}, metric {result['metric'] or 'any'})")  # fmt: skip
    for arm in result["arms"]:
        found = arm.get("vs_control", {}).get("conversion_rate")
        table.add_row(arm["arm"], arm["campaign"], str(arm["users"]), str(arm["exposures"]),
                      str(arm["conversions"]), _percent(arm["conversion_rate"]),
                      _number(arm["mean_value"]), _lift(found), _p(found))  # fmt: skip
    console.print(table)
    srm = result["sample_ratio"]
    if srm["flagged"]:
        console.print(f"[bold red]sample-ratio mismatch[/]: p = {srm['p_value']:.2g}; users per "
                      "arm do not follow the weights, the lifts cannot be trusted")  # fmt: skip
    elif srm["p_value"] is not None:
        console.print(f"sample ratio ok (p = {srm['p_value']:.3g})")
    for metric, adjusted in result.get("cuped", {}).get("metrics", {}).items():
        for arm, found in adjusted["vs_control"].items():
            console.print(f"CUPED {metric} {arm}: {_lift(found)} (variance "
                          f"-{adjusted['variance_reduction']:.0%})")  # fmt: skip


def _p(found: dict[str, Any] | None) -> str:
    return "-" if not found or found["p_value"] is None else f"{found['p_value']:.3g}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _lift(found: dict[str, Any] | None) -> str:
    if not found or found["lift"] is None:
        return "-"
    return f"{found['lift']:+.1%} [{found['ci_low']:+.1%}, {found['ci_high']:+.1%}]"


# metric attributions ---------------------------------------------------------------------------
@metrics_app.command("create")
def create_metric(
    ctx: typer.Context,
    name: str,
    event_type: Annotated[str, typer.Option(help="The events the metric is computed over.")],
    expression: Annotated[str, typer.Option(help='"SUM(Items.PRICE)" or "SAMPLECOUNT()".')],
    group: str | None = group_option(),
) -> None:
    """From now on the group's campaign answers are logged with their source."""
    with engine(ctx) as eng:
        record = eng.experiments.metrics.create(_group(ctx, group), name, event_type=event_type,
                                                expression=expression)  # fmt: skip
    console.print(f"metric {name!r}: {record.expression} of {record.event_type} events")


@metrics_app.command("list")
def list_metrics(
    ctx: typer.Context, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    with engine(ctx) as eng:
        records = eng.experiments.metrics.list(_group(ctx, group))
    if as_json:
        print_json([{"name": r.name, "event_type": r.event_type, "expression": r.expression}
                    for r in records])  # fmt: skip
        return
    table = Table("name", "event type", "expression")
    for r in records:
        table.add_row(r.name, r.event_type, r.expression)
    console.print(table)


@metrics_app.command("delete")
def delete_metric(ctx: typer.Context, name: str, group: str | None = group_option()) -> None:
    with engine(ctx) as eng:
        eng.experiments.metrics.delete(_group(ctx, group), name)
    console.print(f"metric {name!r} deleted")


@metrics_app.command("report")
def metric_report(
    ctx: typer.Context, name: str, group: str | None = group_option(), as_json: JsonFlag = False
) -> None:
    """The metric per campaign, serving source, experiment arm and promotion."""
    with engine(ctx) as eng:
        result = eng.experiments.metric_report(_group(ctx, group), name)
    if as_json:
        print_json(result)
        return
    table = Table("by", "source", "events", "value",
                  title=f"{result['metric']}: {result['expression']} of {result['event_type']} "
                  f"({result['attributed']} of {result['events']} events attributed)")  # fmt: skip
    for section in ("by_campaign", "by_source", "by_experiment_arm", "by_promotion"):
        for key, row in result[section].items():
            table.add_row(section.removeprefix("by_"), key, str(row["events"]),
                          f"{row['value']:.4g}")  # fmt: skip
    console.print(table)
