"""sequential on several processes (PyTorch DDP, gloo): same quality as one process, from the
CLI to a served answer; the ranks' shares of batches and validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from tastebud.cli import app
from tastebud.engine import Engine
from tastebud.errors import InvalidInput
from tastebud.recipes import Query
from tastebud.recipes.sequential.distributed import Team, check_processes, share
from tastebud.recipes.sequential.tokens import Sequences
from tastebud.recipes.sequential.train import hold_out_last, validation_ndcg
from tastebud.serving.versions import load_version, version_folder
from tastebud.settings import Settings
from tests.recipes.test_sequential import fit, from_sequences

N_ITEMS, USERS, LENGTH = 24, 80, 10
# the planted rule i -> i + 1 (mod N_ITEMS) is learned within these epochs on one process
PARAMS = {"epochs": 25, "hidden": 32, "max_len": 8, "batch_size": 32, "lr": 0.01,
          "dropout": 0.0, "validation_users": 16, "patience": 25, "device": "cpu"}  # fmt: skip


def walks() -> list[list[int]]:
    """Each user walks i -> i + 1 (mod N_ITEMS) from a random start."""
    starts = np.random.default_rng(0).integers(0, N_ITEMS, size=USERS)
    return [[(int(s) + j) % N_ITEMS for j in range(LENGTH)] for s in starts]


def rule_accuracy(folder: Path) -> float:
    """Share of planted histories (one per start item) whose best-scored item follows the
    rule, scored by the saved version."""
    version = load_version(folder, "v")
    index = version.items.indices([f"i{i}" for i in range(N_ITEMS)])  # import order
    histories = np.array([[(start + j) % N_ITEMS for j in range(5)] for start in range(N_ITEMS)])
    query = Query(
        users=np.full(N_ITEMS, -1, np.int32),
        history_indptr=np.arange(0, histories.size + 1, 5, dtype=np.int64),
        history_items=index[histories.ravel()].astype(np.int32),
    )
    scores = version.model.score(query)
    scores[np.arange(N_ITEMS)[:, None], query.history_items.reshape(N_ITEMS, 5)] = -np.inf
    best = scores.argmax(axis=1)  # the history excluded, as answers do
    return float((best == index[(histories[:, -1] + 1) % N_ITEMS]).mean())


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The CLI on a home whose default group holds the planted walks and a ``seq`` solution."""
    home = tmp_path / "home"
    sequences = walks()
    pl.DataFrame({
        "USER_ID": [f"u{u}" for u, s in enumerate(sequences) for _ in s],
        "ITEM_ID": [f"i{i}" for s in sequences for i in s],
        "TIMESTAMP": [1_000_000 + 10 * j + u for u, s in enumerate(sequences)
                      for j in range(len(s))],
    }).write_csv(tmp_path / "walks.csv")  # fmt: skip
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["--home", str(home), *args])
        return result.exit_code, result.stdout, result.stderr

    code, _, err = run("import", str(tmp_path / "walks.csv"), "--dataset", "interactions")
    assert code == 0, err
    with Engine(Settings(home=home)) as eng:
        body = {"recipe": "sequential", "params": PARAMS, "evaluate": False}
        eng.create_solution("default", "seq", body)
        eng.create_solution("default", "popular", {"recipe": "popularity-count"})
    return run


def test_two_processes_match_one_and_the_version_serves(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("train", "seq", "--json")
    assert code == 0, err
    single = json.loads(out)
    code, out, err = cli("train", "seq", "--nproc", "2", "--json")
    assert code == 0, err
    ddp = json.loads(out)
    assert ddp["status"] == "active" and ddp["id"] != single["id"]
    artifacts = Settings(home=tmp_path / "home").artifacts
    one = rule_accuracy(version_folder(artifacts, single["id"]))
    two = rule_accuracy(version_folder(artifacts, ddp["id"]))
    assert one >= 0.9 and two >= 0.9, (one, two)
    # the newest version (two processes') answers: u0's next item follows its last one
    code, out, err = cli("recommend", "--solution", "seq", "--user", "u0", "-n", "1", "--json")
    assert code == 0, err
    answer = json.loads(out)
    last = walks()[0][-1]
    assert answer["solutionVersionId"] == ddp["id"]
    assert answer["results"][0]["id"] == f"i{(last + 1) % N_ITEMS}"


def test_bad_process_counts_are_one_line_errors(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("train", "popular", "--nproc", "2")
    assert code == 1 and "recipe 'popularity-count' trains in one process" in err
    code, _, err = cli("train", "seq", "--nproc", "0")
    assert code == 1 and "--nproc 0: must be at least 1" in err
    code, _, err = cli("train", "seq", "--nproc", "100000")
    assert code == 1 and "--nproc 100000: at most" in err and "Traceback" not in err
    with pytest.raises(InvalidInput, match="one process per GPU"):
        check_processes(2, cores=2, recipe="sequential", device="cuda")


def test_ranks_split_each_batch_into_alike_disjoint_shares() -> None:
    batch = np.arange(10, 17)
    shares = [Team(rank=r, size=2).shard(batch) for r in range(2)]
    np.testing.assert_array_equal(shares[0], [10, 12, 14, 16])
    np.testing.assert_array_equal(shares[1], [11, 13, 15])
    # a batch smaller than the team: every rank still gets a window, and steps
    tiny = [Team(rank=r, size=4).shard(np.array([5, 6])) for r in range(4)]
    assert [t.tolist() for t in tiny] == [[5], [6], [5], [6]]
    np.testing.assert_array_equal(Team().shard(batch), batch)


def test_validation_shares_measure_the_whole() -> None:
    data = from_sequences(walks(), N_ITEMS)
    model = fit(data, {**PARAMS, "epochs": 2})
    sequences = Sequences(
        np.arange(0, USERS * LENGTH + 1, LENGTH, dtype=np.int64),
        np.concatenate(walks()).astype(np.int32) + 1, np.ones(USERS * LENGTH, np.int32),
    )  # fmt: skip
    features = np.zeros((USERS * LENGTH, 0), np.int32)
    _, _, validation = hold_out_last(sequences, features, n_users=40, max_len=8,
                                     rng=np.random.default_rng(1))  # fmt: skip
    assert validation is not None
    whole = validation_ndcg(model.network, validation)
    parts = [share(validation, low, high) for low, high in [(0, 13), (13, 13), (13, 40)]]
    summed = sum(validation_ndcg(model.network, p) * len(p) for p in parts)
    assert [len(p) for p in parts] == [13, 0, 27]
    assert summed / len(validation) == pytest.approx(whole, abs=1e-6)
