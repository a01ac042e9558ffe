"""Batch jobs: ``tastebud batch recommend|segment`` (JSON Lines in, JSON Lines out)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tastebud.batch import BatchResult, BatchSpec, JobKind
from tastebud.cli._common import (
    console,
    engine,
    existing_file,
    group_option,
    print_json,
    progress_bar,
    resolve_group,
)
from tastebud.serving.precomputed import PrecomputedTarget

batch_app = typer.Typer(
    help="Batch jobs: answers for every line of a JSON Lines file.", no_args_is_help=True
)

Solution = Annotated[str | None, typer.Option(help="Answer with this solution's newest version.")]
Version = Annotated[str | None, typer.Option("--version", help="Answer with this version id.")]
Input = Annotated[Path, typer.Option("--input", "-i", help="JSON Lines, one request a line.")]
Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="JSON Lines, one answer per input line.")
]
To = Annotated[
    str | None,
    typer.Option("--to", help="Also write each answer to Redis: redis://host:6379/0."),
]
KeyPrefix = Annotated[str, typer.Option(help="Keys are PREFIX + user id (item id).")]
Ttl = Annotated[int | None, typer.Option("--ttl", help="Keys expire after this many seconds.")]
NumResults = Annotated[int, typer.Option(help="Results per line (1-500).")]
FilterName = Annotated[str | None, typer.Option("--filter", help="A filter of the group.")]
ErrorRate = Annotated[
    float, typer.Option(help="Fail the job (no output) when more lines than this share fail.")
]
Executor = Annotated[
    str, typer.Option(help="local (this process), processes (a pool) or ray (tastebud\\[ray]).")
]
Workers = Annotated[int, typer.Option(help="Processes or Ray tasks at once.")]
ShardLines = Annotated[int, typer.Option(help="Input lines per shard (unit of work, resume).")]
Explain = Annotated[bool, typer.Option("--explain", help="Add each item's reasons.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the job's summary as JSON.")]


@batch_app.command("recommend")
def recommend(
    ctx: typer.Context,
    input_file: Input,
    output: Output = None,
    solution: Solution = None,
    version: Version = None,
    num_results: NumResults = 25,
    filter_name: FilterName = None,
    max_error_rate: ErrorRate = 0.1,
    explain: Explain = False,
    to: To = None,
    key_prefix: KeyPrefix = "recs:",
    ttl: Ttl = None,
    executor: Executor = "local",
    workers: Workers = 2,
    shard_lines: ShardLines = 20_000,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """Items for each {"userId"}, similar items for each {"itemId"}, or each
    {"userId", "itemList"} ranked. Run again with the same output to resume a stopped job."""
    _run(ctx, "recommend", locals())


@batch_app.command("segment")
def segment(
    ctx: typer.Context,
    input_file: Input,
    output: Output = None,
    solution: Solution = None,
    version: Version = None,
    num_results: NumResults = 100,
    filter_name: FilterName = None,
    max_error_rate: ErrorRate = 0.1,
    to: To = None,
    key_prefix: KeyPrefix = "segments:",
    ttl: Ttl = None,
    executor: Executor = "local",
    workers: Workers = 2,
    shard_lines: ShardLines = 20_000,
    group: str | None = group_option(),
    as_json: JsonFlag = False,
) -> None:
    """The users most likely to want each {"itemId"} or {"itemAttributes": "GENRES = \\"x\\""}
    (item-affinity solutions)."""
    _run(ctx, "segment", locals())


def _run(ctx: typer.Context, kind: JobKind, options: dict[str, Any]) -> None:
    as_json = options["as_json"]
    with engine(ctx) as eng, progress_bar(enabled=not as_json) as bar:
        to = None
        if options["to"] is not None:
            to = PrecomputedTarget.parse(options["to"], key_prefix=options["key_prefix"],
                                         ttl_seconds=options["ttl"])  # fmt: skip
        spec = BatchSpec(
            group=resolve_group(ctx, options["group"]), kind=kind,
            input=existing_file(options["input_file"]), output=options["output"],
            solution=options["solution"], version_id=options["version"],
            num_results=options["num_results"], filter_name=options["filter_name"],
            max_error_rate=options["max_error_rate"], explain=options.get("explain", False),
            to=to, executor=options["executor"],
            workers=options["workers"], shard_lines=options["shard_lines"],
        )  # fmt: skip
        task = bar.add_task(f"batch {kind}", total=1.0, note="")
        result = eng.batch.run(spec, progress=lambda f, note: bar.update(task, completed=f,
                                                                         note=note))  # fmt: skip
        bar.update(task, completed=1.0, note="done")
    _report(result, as_json)


def _report(result: BatchResult, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    resumed = f", {result.resumed:,} from the earlier run" if result.resumed else ""
    console.print(
        f"[green]{result.lines:,} lines answered[/] by {result.version_id} in "
        f"{result.seconds:.1f} s ({result.errors:,} errors{resumed}) → "
        f"{result.output or 'the key-value store'}"
    )
    for sample in result.samples:
        console.print(f"  [yellow]{sample}[/]", highlight=False)
