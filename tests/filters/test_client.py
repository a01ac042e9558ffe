"""The Python client's filter methods against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tastebud.client import Client
from tastebud.errors import AlreadyExists, FilterSyntaxError, InvalidInput, NotFound
from tests.serving.conftest import write_clustered
from tests.test_client import client, server  # noqa: F401  (fixtures: a server, a client)

GENRE_B = {f"i{i}" for i in range(20, 40)}


def test_filters_by_name_with_values(client: Client, tmp_path: Path) -> None:  # noqa: F811
    interactions, items = write_clustered(tmp_path)
    client.put_schema("items", {"GENRES": "categorical"})
    client.import_file(interactions, dataset="interactions", mode="full", poll_interval=0.02)
    client.import_file(items, dataset="items", mode="full", poll_interval=0.02)
    client.create_solution("popular", "popularity-count")
    client.train("popular", poll_interval=0.02)

    checked = client.validate_filter("include itemid where Items.GENRES in ($G)")
    assert checked == {"filterExpression": "INCLUDE ItemID WHERE Items.GENRES IN ($G)",
                       "parameters": ["G"], "target": "ItemID"}  # fmt: skip
    # The SDK raises the class the body's error type names (a subclass of InvalidInput).
    with pytest.raises(FilterSyntaxError, match="column 34: unbalanced quotes"):
        client.validate_filter('EXCLUDE ItemID WHERE Items.X IN ("a)')
    created = client.create_filter("genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    assert created["name"] == "genre" and created["parameters"] == ["G"]
    with pytest.raises(AlreadyExists):
        client.create_filter("genre", "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    assert [f["name"] for f in client.list_filters()] == ["genre"]
    assert client.get_filter("genre")["filterExpression"].endswith("($G)")

    answer = client.recommend("u0", solution="popular", num_results=8, filter_name="genre",
                              filter_values={"G": ["b"]})  # fmt: skip
    items_b = [r["itemId"] for r in answer["itemList"]]
    assert len(items_b) == 8 and set(items_b) <= GENRE_B
    ranked = client.rank("u0", ["i1", "i21", "i2"], solution="popular", filter_name="genre",
                         filter_values={"G": ["b"]})  # fmt: skip
    assert [r["itemId"] for r in ranked["itemList"]] == ["i21"]
    with pytest.raises(InvalidInput, match=r"no value for \$G"):
        client.recommend("u0", solution="popular", filter_name="genre")
    client.delete_filter("genre")
    with pytest.raises(NotFound, match="filter 'genre' does not exist"):
        client.get_filter("genre")
