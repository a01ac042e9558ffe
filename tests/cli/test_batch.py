"""``tastebud batch``: a job from the command line, and a real process killed half-way (kill -9)
that resumes, run again with the same output, without a duplicate or missing line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from tastebud.batch.shards import Parts
from tastebud.cli import app
from tests.serving.conftest import write_clustered
from tests.serving.test_precomputed import REDIS_URL, prefix

__all__ = ["prefix"]


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    home = tmp_path / "home"

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["--home", str(home), *args])
        return result.exit_code, result.stdout, result.stderr

    interactions, _ = write_clustered(tmp_path)
    assert run("import", str(interactions), "--dataset", "interactions", "--json")[0] == 0
    assert run("solutions", "create", "for-you", "--recipe", "user-personalization",
               "-p", "algorithm=ease")[0] == 0  # fmt: skip
    assert run("train", "for-you", "--json")[0] == 0
    return run


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_batch_recommend_from_the_command_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "users.jsonl"
    source.write_text('{"userId": "u1"}\n{"userId": "u2", "context": {"DEVICE": "tv"}}\n{bad\n')
    output = tmp_path / "out.jsonl"
    code, out, err = cli("batch", "recommend", "--solution", "for-you", "-i", str(source),
                         "-o", str(output), "--num-results", "3", "--max-error-rate", "0.5",
                         "--json")  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["lines"] == 3 and summary["errors"] == 1
    assert summary["first_errors"][0].startswith("line 3: invalid JSON")
    answers = lines(output)
    assert [len(a["output"]["recommendedItems"]) for a in answers[:2]] == [3, 3]  # type: ignore[index]
    code, _, err = cli("batch", "recommend", "--solution", "for-you", "-i", str(source),
                       "-o", str(output), "--max-error-rate", "0.2")  # fmt: skip
    assert code == 1 and "1 of 3 lines failed" in err and "Traceback" not in err
    code, _, err = cli("batch", "segment", "--solution", "for-you", "-i", str(source),
                       "-o", str(output))  # fmt: skip
    assert code == 1 and "does not answer segments" in err


def test_killed_job_resumes_with_every_line_once(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "users.jsonl"
    source.write_text("".join(json.dumps({"userId": f"u{i % 61}"}) + "\n" for i in range(30_000)))
    clean = tmp_path / "clean.jsonl"
    assert cli("batch", "recommend", "--solution", "for-you", "-i", str(source), "-o",
               str(clean), "--shard-lines", "3000")[0] == 0  # fmt: skip
    output = tmp_path / "out.jsonl"
    tastebud = str(Path(sys.executable).with_name("tastebud"))
    command = [tastebud, "--home", str(tmp_path / "home"), "batch", "recommend", "--solution",
               "for-you", "-i", str(source), "-o", str(output), "--shard-lines", "3000",
               "--json"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = Parts.for_output(output)
    deadline = time.monotonic() + 120
    while not (parts.folder / "part-00002.jsonl").exists():  # two shards done, a third begun
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the job did not get going"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not output.exists()
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert 6000 <= summary["resumed_lines"] < 30_000
    assert output.read_bytes() == clean.read_bytes()


def test_batch_to_redis_only(cli, tmp_path: Path, prefix: str) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "users.jsonl"
    source.write_text('{"userId": "u1"}\n{"userId": "u2"}\n')
    code, out, err = cli("batch", "recommend", "--solution", "for-you", "-i", str(source),
                         "--to", REDIS_URL, "--key-prefix", prefix, "--ttl", "60",
                         "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["output"] is None
    keys = redis.Redis.from_url(REDIS_URL)
    assert len(json.loads(keys.get(f"{prefix}u2") or b"{}")["recommendedItems"]) == 25
    keys.close()
    code, _, err = cli("batch", "recommend", "--solution", "for-you", "-i", str(source))
    assert code == 1 and "give an output file, a key-value target" in err
    code, _, err = cli("batch", "recommend", "--solution", "for-you", "-i", str(source),
                       "--to", "memcached://x")  # fmt: skip
    assert code == 1 and "memcached://x" in err
