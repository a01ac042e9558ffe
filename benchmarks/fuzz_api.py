"""A long fuzzing run of the whole HTTP API: the suite's fuzz test with more, fresh examples.

    ./dev bench fuzz_api [--examples 100] [--seed N]

Runs ``tests/api/test_fuzz.py`` (a real ``tastebud serve`` on a generated data set, tokens of
each scope, schemathesis checking every answer against the OpenAPI document) with
``--examples`` generated requests per operation and random inputs (``--seed`` replays a run),
then prints and saves the operations, requests, answers by status, the operations that reached
a success, and the failures (``results/fuzz_api.json``; figures in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "fuzz_api.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "answers.json"
        env = {**os.environ, "TASTEBUD_FUZZ_EXAMPLES": str(args.examples),
               "TASTEBUD_FUZZ_RANDOM": "1", "TASTEBUD_FUZZ_REPORT": str(report)}  # fmt: skip
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "tests/api/test_fuzz.py", "-o", "addopts=", "--timeout=3600"]  # fmt: skip
        if args.seed is not None:
            command.append(f"--hypothesis-seed={args.seed}")
        started = time.monotonic()
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - started
        answers = json.loads(report.read_text()) if report.exists() else []
    summary = _summary(answers, run.stdout, seconds, args.examples)
    print(run.stdout if run.returncode else run.stdout.splitlines()[-1])  # failures in full
    print(json.dumps(summary, indent=1))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=1) + "\n")
    sys.exit(run.returncode)


def _summary(answers: list[dict[str, object]], output: str, seconds: float, examples: int) -> dict:
    by_status: Counter[int] = Counter()
    succeeded: set[str] = set()
    operations: set[str] = set()
    for row in answers:
        status, count, operation = int(row["status"]), int(row["count"]), str(row["operation"])  # type: ignore[call-overload]
        by_status[status] += count
        operations.add(operation)
        if status < 400:
            succeeded.add(operation)
    failures = re.findall(r"^\s*\|?\s*- (ST\d{3} .+)$", output, flags=re.MULTILINE)
    return {
        "date": time.strftime("%Y-%m-%d"),
        "examples_per_operation": examples,
        "seconds": round(seconds, 1),
        "method_path_pairs": len(operations),  # with the undocumented methods it also tries
        "requests": sum(by_status.values()),
        "answers_by_status": dict(sorted(by_status.items())),
        "operations_with_a_success": len(succeeded),
        "failures": dict(Counter(failures)),
        "tests": output.strip().splitlines()[-1] if output.strip() else "",
    }


if __name__ == "__main__":
    main()
