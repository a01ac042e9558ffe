"""The schedules commands and ``tastebud worker``: in process (CliRunner) and as real
processes, several at once over one store; and ``tastebud serve`` running schedules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tastebud.engine import Engine
from tastebud.jobs.schedules import ScheduleSpec
from tastebud.settings import Settings
from tastebud.store import Store
from tests.api.servers import ADMIN_TOKEN, ServeProcess
from tests.cli.test_solutions import cli  # noqa: F401 (fixture)
from tests.serving.conftest import write_clustered


def test_create_list_pause_resume_delete(cli) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert cli("solutions", "create", "popular", "--recipe", "popularity-count")[0] == 0
    code, out, err = cli("schedules", "create", "nightly", "--solution", "popular", "--cron",
                         "0 3 * * *", "--max-train-seconds", "600", "--json")  # fmt: skip
    assert code == 0, err
    made = json.loads(out)
    assert (made["description"], made["max_train_seconds"], made["runs"]) == (
        "cron 0 3 * * *", 600, 0)  # fmt: skip
    assert time.gmtime(made["next_run_at"])[3:6] == (3, 0, 0)
    code, out, err = cli("schedules", "create", "live", "--solution", "popular",
                         "--after-events", "1000", "--max-metric-drop", "0.02")  # fmt: skip
    assert code == 0 and "live" in out
    code, out, _ = cli("schedules", "show", "live", "--json")
    live = json.loads(out)
    assert (live["pending_events"], live["max_metric_drop"]) == (720, 0.02)
    assert live["metric"] == "ndcg@10"
    code, out, _ = cli("schedules", "list", "--json")
    assert [s["name"] for s in json.loads(out)] == ["live", "nightly"]

    assert cli("schedules", "pause", "nightly")[0] == 0
    code, out, _ = cli("schedules", "show", "nightly", "--json")
    assert json.loads(out)["paused"] is True
    code, out, _ = cli("schedules", "resume", "nightly")
    assert code == 0 and "resumed schedule nightly: next run" in out
    assert cli("schedules", "delete", "nightly")[0] == 0
    code, _, err = cli("schedules", "show", "nightly")
    assert code == 1 and "schedule 'nightly' does not exist" in err


def test_mistakes_are_one_line_errors(cli) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert cli("solutions", "create", "popular", "--recipe", "popularity-count")[0] == 0
    cases = [
        (["--every", "5s"], "every: at least 10s, got '5s'"),
        (["--every", "often"], "every: expected a duration such as 30s, 15m"),
        (["--cron", "0 3 * *"], "cron: expected 5 fields"),
        (["--every", "15m", "--after-events", "10"], "give exactly one trigger"),
        ([], "give exactly one trigger"),
        (["--every", "1h", "--metric", "hr@10"], "metric: 'hr@10' is only used with"),
        (["--every", "1h", "--max-metric-drop", "0.1", "--metric", "auc"], "metric: expected"),
    ]
    for options, message in cases:
        code, _, err = cli("schedules", "create", "s", "--solution", "popular", *options)
        assert code == 1 and message in err and "Traceback" not in err, (options, err)
    code, _, err = cli("schedules", "create", "s", "--solution", "nope", "--every", "1h")
    assert code == 1 and "solution 'nope' does not exist" in err


def test_worker_once_runs_what_is_due(cli) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert cli("solutions", "create", "popular", "--recipe", "popularity-count")[0] == 0
    assert cli("schedules", "create", "live", "--solution", "popular", "--after-events",
               "500")[0] == 0  # fmt: skip
    code, out, err = cli("worker", "--once", "--json")
    assert code == 0, err
    (report,) = json.loads(out)
    assert (report["schedule"], report["outcome"]) == ("live", "succeeded")
    code, out, _ = cli("jobs", "list", "--json")
    (job,) = json.loads(out)
    assert (job["id"], job["kind"], job["status"]) == (report["job_id"], "scheduled-training",
                                                        "succeeded")  # fmt: skip
    code, out, _ = cli("solutions", "versions", "popular", "--json")
    assert [(v["id"], v["status"]) for v in json.loads(out)] == [(report["version_id"], "active")]
    code, out, _ = cli("worker", "--once")
    assert code == 0 and "0 run(s)" in out  # nothing new since that run


# real processes ---------------------------------------------------------------------------------
def _environment(home: Path, database_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "TASTEBUD_HOME": str(home)}
    for name in ("TASTEBUD_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    if database_url:
        env["TASTEBUD_DATABASE_URL"] = database_url
    return env


def _prepare(
    home: Path, tmp_path: Path, *, schedules: int, group: str = "default",
    database_url: str | None = None,
) -> None:  # fmt: skip
    """Clustered data, a solution and ``schedules`` due event-triggered schedules of it."""
    with Engine(Settings(home=home, default_group=group, database_url=database_url)) as engine:
        engine.ensure_group(group)
        interactions, _ = write_clustered(tmp_path)
        engine.import_file(group, "interactions", interactions, mode="full")
        engine.create_solution(group, "popular", {"recipe": "popularity-count"})
        for n in range(schedules):
            engine.schedules.create(group, f"s{n}", solution="popular",
                                    spec=ScheduleSpec.parse(after_events=100))  # fmt: skip


def test_worker_processes_share_the_runs(
    store: Store, group: str, store_url: str, tmp_path: Path
) -> None:
    """Three `tastebud worker --once` processes, six due schedules: each runs exactly once."""
    home = tmp_path / "home"
    _prepare(home, tmp_path, schedules=6, group=group, database_url=store_url)
    command = [sys.executable, "-m", "tastebud", "--group", group, "worker", "--once", "--json",
               "--only-group", group]  # fmt: skip
    env = _environment(home, store_url)
    pipe = subprocess.PIPE
    processes = [
        subprocess.Popen(command, env=env, stdout=pipe, stderr=pipe, text=True) for _ in range(3)
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        reports += json.loads(out)
    assert sorted(r["schedule"] for r in reports) == [f"s{n}" for n in range(6)]
    assert {r["outcome"] for r in reports} == {"succeeded"}
    assert all(s.runs == 1 for s in store.list_schedules(group))
    versions = store.list_solution_versions(group, "popular")
    assert len(versions) == 6 and {v.status for v in versions} == {"active"}
    assert len([j for j in store.list_jobs(group) if j.kind == "scheduled-training"]) == 6


def test_a_worker_runs_until_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _prepare(home, tmp_path, schedules=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "tastebud", "worker", "--poll-seconds", "0.2"],
        env=_environment(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with Engine(Settings(home=home)) as engine:
            deadline = time.monotonic() + 60
            while engine.schedules.get("default", "s0").runs == 0:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
            assert (engine.schedules.get("default", "s0").last_run or {})["outcome"] == "succeeded"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "schedule run done" in err and "scheduler stopped" in err  # JSON log lines


def test_serve_runs_schedules_and_counts_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _prepare(home, tmp_path, schedules=1)
    server = ServeProcess(home, env={"TASTEBUD_SCHEDULES__POLL_SECONDS": "0.2"})
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        server.wait_ready()
        deadline = time.monotonic() + 60
        while True:
            shown = httpx.get(f"{server.url}/v1/dataset-groups/default/schedules/s0",
                              headers=headers).json()  # fmt: skip
            if shown["runs"] == 1:
                break
            assert time.monotonic() < deadline, shown
            time.sleep(0.2)
        assert shown["lastRun"]["outcome"] == "succeeded"
        metrics = httpx.get(f"{server.url}/metrics", headers=headers).text
        assert ('tastebud_schedule_runs_total{group="default",outcome="succeeded",'
                'schedule="s0"} 1.0') in metrics  # fmt: skip
    finally:
        logs = server.stop()
    assert server.process.returncode in (0, -signal.SIGTERM), logs  # uvicorn re-raises it
    assert "scheduler started" in logs and "scheduler stopped" in logs
