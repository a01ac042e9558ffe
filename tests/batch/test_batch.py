"""Batch jobs on planted two-cluster data, on SQLite and PostgreSQL: every batch answer equals the
real-time answer of the same version for the same history; bad lines get errors; the error
budget fails a job without output; a stopped job resumes without duplicate or missing lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import redis

from tastebud.batch import BatchFailed, BatchSpec
from tastebud.batch.shards import Parts
from tastebud.engine import Engine
from tastebud.errors import InvalidInput, NotFound, NotReady
from tastebud.ingest import PutEventsRequest
from tastebud.serving.campaigns import CampaignRequest
from tastebud.serving.precomputed import PrecomputedTarget
from tests.serving.test_history import SOLUTIONS as WINDOWED
from tests.serving.test_history import short
from tests.serving.test_precomputed import REDIS_URL, prefix

__all__ = ["prefix", "short"]

RECIPES = {
    "ease": {"recipe": "user-personalization", "params": {"algorithm": "ease"}},
    "als": {"recipe": "user-personalization", "params": {"algorithm": "als", "factors": 8}},
    "items": {"recipe": "similar-items", "params": {"mode": "cosine"}},
    "popular": {"recipe": "popularity-count"},
    "affinity": {"recipe": "item-affinity", "params": {"algorithm": "ease"}},
    "sequential": {
        "recipe": "sequential",
        "params": {
            "epochs": 3,
            "hidden": 16,
            "max_len": 8,
            "batch_size": 16,
            "validation_users": 8,
        },
    },
}
USERS = [f"u{u}" for u in range(60)] + ["stranger"]


@pytest.fixture
def trained(loaded: Engine, group: str) -> Engine:
    for name, body in RECIPES.items():
        loaded.create_solution(group, name, body | {"evaluate": False})
        loaded.train(group, name)
    # Events after training: the batch must read them as the real-time path does.
    late = {
        "userId": "u3",
        "eventList": [
            {"itemId": "i25", "sentAt": 2_000_000_000},
            {"itemId": "new-item", "eventType": "buy"},
        ],
    }
    loaded.put_events(group, PutEventsRequest.model_validate(late))
    return loaded


def write_lines(path: Path, lines: list[Any]) -> Path:
    text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(engine: Engine, group: str, tmp_path: Path, lines: list[Any], **options: Any) -> list[Any]:
    source = write_lines(tmp_path / "in.jsonl", lines)
    output = tmp_path / "out.jsonl"
    spec = BatchSpec(group=group, input=source, output=output, **{"kind": "recommend"} | options)
    engine.batch.run(spec)
    return read_lines(output)


def realtime(engine: Engine, group: str, solution: str, user: str, k: int) -> list[str]:
    answer = engine.recommender.recommend(group, {"solution": solution}, user_id=user, k=k)
    return [r.id for r in answer.results]


@pytest.mark.parametrize("solution", ["ease", "als", "items", "popular", "sequential"])
def test_batch_answers_equal_real_time_answers(
    trained: Engine, group: str, tmp_path: Path, solution: str
) -> None:
    out = run(trained, group, tmp_path, [{"userId": u} for u in USERS], solution=solution,
              num_results=7, shard_lines=25)  # fmt: skip
    assert [line["input"]["userId"] for line in out] == USERS  # input order, across shards
    for line in out:
        assert line["error"] is None
        expected = realtime(trained, group, solution, line["input"]["userId"], 7)
        assert line["output"]["recommendedItems"] == expected
        assert len(line["output"]["scores"]) == 7


def test_batch_equals_real_time_beyond_the_serving_window(
    short: Engine, group: str, tmp_path: Path
) -> None:
    """A 4-event serving window over 12-event users (see ``tests/serving/test_history.py``):
    batch reads the same scoring windows, seen items and filter events as real time."""
    expression = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")'
    short.create_filter(group, "not-recent", expression)
    for solution in WINDOWED:
        for filter_name in (None, "not-recent"):
            out = run(short, group, tmp_path, [{"userId": u} for u in USERS], solution=solution,
                      num_results=30, filter_name=filter_name)  # fmt: skip
            for line in out:
                expected = short.recommender.recommend(
                    group, {"solution": solution}, user_id=line["input"]["userId"], k=30,
                    filter_name=filter_name,
                )  # fmt: skip
                assert line["error"] is None
                assert line["output"]["recommendedItems"] == [r.id for r in expected.results], (
                    solution, filter_name, line["input"]["userId"])  # fmt: skip


def test_ranking_and_similar_item_lines_equal_real_time(
    trained: Engine, group: str, tmp_path: Path
) -> None:
    listed = ["i30", "i1", "unknown-item", "i2"]
    out = run(trained, group, tmp_path,
              [{"userId": "u4", "itemList": listed}, {"itemId": "i2"}, {"itemId": "never-seen"}],
              solution="items", num_results=5)  # fmt: skip
    ranked = trained.recommender.rank(group, {"solution": "items"}, user_id="u4", item_ids=listed)
    assert out[0]["output"]["itemList"] == [r.id for r in ranked.results]
    assert out[0]["output"]["itemList"][-1] == "unknown-item"  # unknown items kept, last
    for line in out[1:]:
        similar = trained.recommender.similar_items(
            group, {"solution": "items"}, item_id=line["input"]["itemId"], k=5
        )
        assert line["output"]["recommendedItems"] == [r.id for r in similar.results]


def test_filters_apply_per_line_with_their_values(
    trained: Engine, group: str, tmp_path: Path
) -> None:
    trained.create_filter(group, "genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    lines = [{"userId": "u2", "filterValues": {"G": g}} for g in ("b", "a")]
    out = run(trained, group, tmp_path, lines, solution="ease", num_results=4, filter_name="genre")
    for line in out:
        genre = line["input"]["filterValues"]["G"]
        expected = trained.recommender.recommend(
            group, {"solution": "ease"}, user_id="u2", k=4, filter_name="genre",
            filter_values={"G": genre},
        )  # fmt: skip
        assert line["output"]["recommendedItems"] == [r.id for r in expected.results]
    b_items = {f"i{i}" for i in range(20, 40)}
    assert set(out[0]["output"]["recommendedItems"]) <= b_items
    assert not set(out[1]["output"]["recommendedItems"]) & b_items


def test_bad_lines_get_errors_and_the_job_goes_on(
    trained: Engine, group: str, tmp_path: Path
) -> None:
    lines = ['{"userId": "u1"}', "{not json", '{"usrId": "u1"}', "{}", '["u1"]', "",
             '{"userId": "u1", "itemId": "i1"}', '{"itemList": ["a"], "itemId": "i1"}',
             '{"userId": "u5", "itemList": ["i1", "i1"]}', '{"userId": "u6"}']  # fmt: skip
    out = run(trained, group, tmp_path, lines, solution="items", max_error_rate=1.0)
    errors = [line["error"] for line in out]
    assert errors[0] is None and errors[-1] is None
    assert "invalid JSON" in errors[1]
    assert "unknown field 'usrId'" in errors[2]
    assert "exactly one of userId or itemId" in errors[3] and "exactly one" in errors[6]
    assert "expected a JSON object" in errors[4]
    assert errors[5] == "empty line"
    assert "ranking needs a userId" in errors[7]
    assert "must be unique" in errors[8]
    assert out[1]["input"] == "{not json" and out[1]["output"] is None


def test_error_budget_fails_the_job_and_writes_nothing(
    trained: Engine, group: str, tmp_path: Path
) -> None:
    lines = [{"userId": "u1"}, {"nope": 1}, {"nope": 2}, {"userId": "u2"}]
    with pytest.raises(BatchFailed, match=r"2 of 4 lines failed \(50.0%\).*line 2: unknown field"):
        run(trained, group, tmp_path, lines, solution="ease", max_error_rate=0.25)
    assert not (tmp_path / "out.jsonl").exists()
    assert not Parts.for_output(tmp_path / "out.jsonl").folder.exists()
    out = run(trained, group, tmp_path, lines, solution="ease", max_error_rate=0.5)
    assert [line["error"] is None for line in out] == [True, False, False, True]


def test_segment_lines_equal_real_time_segments(
    trained: Engine, group: str, tmp_path: Path
) -> None:
    lines = [{"itemId": "i25"}, {"itemAttributes": 'GENRES = "a"'}, {"itemId": "nothing"},
             {"itemAttributes": "Items.GENRES = a AND GENRES = b"}, {"userId": "u1"}]  # fmt: skip
    out = run(trained, group, tmp_path, lines, kind="segment", solution="affinity",
              num_results=6, max_error_rate=1.0)  # fmt: skip
    by_item = trained.recommender.users_for_item(group, {"solution": "affinity"},
                                                 item_id="i25", k=6)  # fmt: skip
    assert out[0]["output"]["usersList"] == [r.id for r in by_item.results]
    by_genre = trained.recommender.users_for_item(group, {"solution": "affinity"},
                                                  attribute="GENRES=a", k=6)  # fmt: skip
    assert out[1]["output"]["usersList"] == [r.id for r in by_genre.results]
    assert "unknown to solution version" in out[2]["error"]
    assert "no item has all of GENRES=a, GENRES=b" in out[3]["error"]
    assert "unknown field 'userId'" in out[4]["error"]


def test_jobs_refuse_what_cannot_work(trained: Engine, group: str, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [{"itemId": "i1"}])
    base = {"group": group, "input": source, "output": tmp_path / "o.jsonl"}
    with pytest.raises(InvalidInput, match="does not answer segments"):
        trained.batch.run(BatchSpec(kind="segment", solution="ease", **base))
    trained.create_solution(group, "untrained", {"recipe": "popularity-count"})
    with pytest.raises(NotReady, match="no trained version"):
        trained.batch.run(BatchSpec(kind="recommend", solution="untrained", **base))
    assert not Parts.for_output(tmp_path / "o.jsonl").folder.exists()  # refused: nothing made
    with pytest.raises(NotFound, match="missing"):
        trained.batch.run(BatchSpec(kind="recommend", solution="ease", filter_name="missing",
                                    **base))  # fmt: skip
    with pytest.raises(InvalidInput, match="numResults"):
        trained.batch.run(BatchSpec(kind="recommend", solution="ease", num_results=0, **base))
    with pytest.raises(InvalidInput, match="no such file"):
        trained.batch.run(BatchSpec(kind="recommend", solution="ease",
                                    **base | {"input": tmp_path / "none.jsonl"}))  # fmt: skip
    with pytest.raises(InvalidInput, match="executor"):
        spec = BatchSpec(kind="recommend", solution="ease", executor="spark", **base)  # type: ignore[arg-type]
        trained.batch.run(spec)


def test_a_stopped_job_resumes_without_duplicate_or_missing_lines(
    trained: Engine, group: str, tmp_path: Path
) -> None:
    users = [{"userId": f"u{i % 60}"} for i in range(300)]
    (tmp_path / "clean").mkdir()
    clean = run(trained, group, tmp_path / "clean", users, solution="ease", shard_lines=70)
    first_version = trained.list_solution_versions(group, "ease")[0].id
    source = write_lines(tmp_path / "in.jsonl", users)
    output = tmp_path / "resumed.jsonl"
    spec = BatchSpec(group=group, kind="recommend", input=source, output=output,
                     solution="ease", shard_lines=70)  # fmt: skip
    seen = [0]

    def crash(fraction: float, message: str) -> None:
        seen[0] += 1
        if seen[0] == 3:
            raise KeyboardInterrupt  # as if the process died after three chunks

    with pytest.raises(KeyboardInterrupt):
        trained.batch.run(spec, progress=crash)
    parts = Parts.for_output(output)
    part = parts.folder / "part-00002.jsonl"
    with open(part, "ab") as torn:  # a line cut in half by the crash
        torn.write(b'{"input": {"userId": "u')
    assert not output.exists()
    # A newer version meanwhile: the resumed run keeps the version it started with.
    trained.train(group, "ease")
    result = trained.batch.run(spec)
    assert result.resumed == 210 and result.lines == 300
    assert result.version_id == first_version != trained.list_solution_versions(group, "ease")[0].id
    assert read_lines(output) == clean
    assert not parts.folder.exists()


def test_a_resumed_output_must_be_the_same_job(trained: Engine, group: str, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [{"userId": "u1"}, {"userId": "u2"}])
    output = tmp_path / "out.jsonl"
    Parts.for_output(output).open({"kind": "recommend", "num_results": 3}, [])
    with pytest.raises(InvalidInput, match=r"another job.*num_results"):
        trained.batch.run(BatchSpec(group=group, kind="recommend", input=source, output=output,
                                    solution="ease"))  # fmt: skip


def test_background_job_reports_progress_and_result(
    trained: Engine, group: str, tmp_path: Path
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [{"userId": u} for u in USERS])
    spec = BatchSpec(group=group, kind="recommend", input=source, output=tmp_path / "o.jsonl",
                     solution="popular")  # fmt: skip
    job = trained.batch.start(spec)
    trained.jobs.close()  # waits for the job
    done = trained.job(job.id)
    assert done.kind == "batch-recommend" and done.status == "succeeded"
    assert done.progress == 1.0 and done.result is not None
    assert done.result["lines"] == len(USERS) and done.result["errors"] == 0
    assert len(read_lines(tmp_path / "o.jsonl")) == len(USERS)


@pytest.mark.slow
def test_process_pool_gives_the_local_output(trained: Engine, group: str, tmp_path: Path) -> None:
    lines = [{"userId": u} for u in USERS] * 3
    local = run(trained, group, tmp_path, lines, solution="ease", shard_lines=50)
    pooled = run(trained, group, tmp_path, lines, solution="ease", shard_lines=50,
                 executor="processes", workers=2)  # fmt: skip
    assert pooled == local


@pytest.mark.slow
def test_ray_executor_gives_the_local_output(trained: Engine, group: str, tmp_path: Path) -> None:
    import ray  # a dev dependency: missing, the test fails (never skips)

    lines = [{"userId": u} for u in USERS] + [{"itemId": "i3"}, {"oops": 1}]
    local = run(trained, group, tmp_path, lines, solution="items", shard_lines=20)
    try:
        remote = run(trained, group, tmp_path, lines, solution="items", shard_lines=20,
                     executor="ray", workers=2)  # fmt: skip
    finally:
        ray.shutdown()
    assert remote == local
    assert sum(line["error"] is not None for line in remote) == 1


@pytest.mark.parametrize("solution", ["ease", "sequential"])
def test_explained_lines_carry_the_real_time_reasons(
    trained: Engine, group: str, tmp_path: Path, solution: str
) -> None:
    lines = [{"userId": "u3"}, {"userId": "u40", "itemList": ["i30", "i2", "zzz"]}]
    out = run(trained, group, tmp_path, lines, solution=solution, num_results=4, explain=True)
    live = trained.recommender.recommend(group, {"solution": solution}, user_id="u3", k=4,
                                         explain=True)  # fmt: skip
    assert out[0]["output"]["reasons"] == [[r.as_dict() for r in s.reasons or ()]
                                           for s in live.results]  # fmt: skip
    assert any(r["kind"] == "history" for reasons in out[0]["output"]["reasons"] for r in reasons)
    ranked = trained.recommender.rank(group, {"solution": solution}, user_id="u40",
                                      item_ids=["i30", "i2", "zzz"], explain=True)  # fmt: skip
    assert out[1]["output"]["reasons"] == [[r.as_dict() for r in s.reasons or ()]
                                           for s in ranked.results]  # fmt: skip
    plain = run(trained, group, tmp_path, lines[:1], solution=solution, num_results=4)
    assert "reasons" not in plain[0]["output"]


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_answers_go_to_redis_and_a_broken_campaign_answers_from_them(
    trained: Engine, group: str, tmp_path: Path, prefix: str, executor: str
) -> None:
    source = write_lines(tmp_path / "in.jsonl", [{"userId": u} for u in USERS[:20]])
    target = PrecomputedTarget.parse(REDIS_URL, key_prefix=prefix, ttl_seconds=600)
    result = trained.batch.run(BatchSpec(group=group, kind="recommend", input=source, to=target,
                                         solution="ease", num_results=5, executor=executor,
                                         shard_lines=7))  # fmt: skip
    assert result.output is None and result.lines == 20
    keys = redis.Redis.from_url(REDIS_URL)
    stored = json.loads(keys.get(f"{prefix}u3") or b"{}")
    expected = realtime(trained, group, "ease", "u3", 5)
    assert stored["recommendedItems"] == expected
    assert stored["solutionVersionId"] == result.version_id and stored["createdAt"] > 0
    assert 0 < keys.ttl(f"{prefix}u3") <= 600
    assert sum(1 for _ in keys.scan_iter(match=f"{prefix}*")) == 20
    # The campaign's model cannot load: it answers from what the batch job stored.
    precomputed = {"url": REDIS_URL, "key_prefix": prefix}
    trained.create_campaign(group, "home", "ease",
                            config={"min_interactions": 0, "precomputed": precomputed})  # fmt: skip
    shutil.rmtree(trained.settings.artifacts / result.version_id)
    trained.recommender.forget_loaded()
    answer = trained.campaign_answer(group, "home", CampaignRequest(user_id="u3", k=5))
    assert answer["source"] == "precomputed"
    assert [i["itemId"] for i in answer["itemList"]] == expected
    keys.close()
