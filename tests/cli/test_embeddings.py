"""``tastebud embeddings export`` end to end on an embedded store."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.cli.test_solutions import cli  # noqa: F401  (fixture)


def test_export_items_and_users_to_parquet(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    code, _, err = cli("solutions", "create", "als", "--recipe", "user-personalization",
                       "-p", "algorithm=als", "-p", "factors=4")  # fmt: skip
    assert code == 0, err
    code, out, err = cli("train", "als", "--json")
    assert code == 0, err
    version = json.loads(out)["id"]
    output = tmp_path / "items.parquet"
    code, out, err = cli("embeddings", "export", "--solution", "als", "--what", "items",
                         "--output", str(output), "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out) == {"rows": 40, "output": str(output)}
    table = pq.read_table(output)
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 4)
    assert table["version_id"].to_pylist() == [version] * 40
    code, _, err = cli("embeddings", "export", "--solution", "als", "--what", "users",
                       "--output", str(tmp_path / "users.parquet"))  # fmt: skip
    assert code == 0 and pq.read_table(tmp_path / "users.parquet").num_rows == 60, err


def test_export_mistakes_are_one_line_errors(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    output = str(tmp_path / "x.parquet")
    code, _, err = cli("embeddings", "export", "--solution", "als", "--what", "genres",
                       "--output", output)  # fmt: skip
    assert code == 1 and "--what 'genres': expected items or users" in err
    code, _, err = cli("solutions", "create", "popular", "--recipe", "popularity-count")
    cli("train", "popular")
    code, _, err = cli("embeddings", "export", "--solution", "popular", "--what", "items",
                       "--output", output)  # fmt: skip
    assert code == 1 and "has no embeddings" in err and "Traceback" not in err
    assert not Path(output).exists()
