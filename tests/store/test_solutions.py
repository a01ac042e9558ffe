"""Solutions and solution versions in the store; runs on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from tastebud.errors import AlreadyExists, NotFound
from tastebud.store import SolutionRecord, SolutionVersionRecord, Store


def solution(group: str, name: str = "for-you", **body: object) -> SolutionRecord:
    return SolutionRecord(
        group=group, name=name, recipe="user-personalization", body={"params": body}
    )


def version(group: str, version_id: str, *, solution: str = "for-you", at: float = 0.0,
            status: str = "training") -> SolutionVersionRecord:  # fmt: skip
    return SolutionVersionRecord(
        id=version_id, group=group, solution=solution, status=status,  # type: ignore[arg-type]
        body={"metrics": {"ndcg@10": 0.1}}, created_at=at or time.time(), updated_at=time.time(),
    )  # fmt: skip


def test_solutions_round_trip_and_replace(store: Store, group: str) -> None:
    store.put_solution(solution(group, factors=64))
    with pytest.raises(AlreadyExists, match="for-you"):
        store.put_solution(solution(group, factors=32))
    assert store.get_solution(group, "for-you").body == {"params": {"factors": 64}}
    store.put_solution(solution(group, factors=32), replace=True)
    assert store.get_solution(group, "for-you").body == {"params": {"factors": 32}}
    store.put_solution(solution(group, "also"))
    assert [s.name for s in store.list_solutions(group)] == ["also", "for-you"]


def test_unknown_solution_is_not_found(store: Store, group: str) -> None:
    with pytest.raises(NotFound, match="nope"):
        store.get_solution(group, "nope")
    with pytest.raises(NotFound, match="nope"):
        store.delete_solution(group, "nope")
    with pytest.raises(NotFound, match="v-missing"):
        store.get_solution_version("v-missing")


def test_versions_update_in_place_and_list_newest_first(store: Store, group: str) -> None:
    store.put_solution(solution(group))
    store.save_solution_version(version(group, f"{group}-a", at=100.0))
    store.save_solution_version(version(group, f"{group}-b", at=200.0))
    done = version(group, f"{group}-a", at=100.0, status="active")
    store.save_solution_version(done)
    loaded = store.get_solution_version(f"{group}-a")
    assert loaded.status == "active" and loaded.group == group
    assert loaded.body == {"metrics": {"ndcg@10": 0.1}}
    listed = store.list_solution_versions(group, "for-you")
    assert [v.id for v in listed] == [f"{group}-b", f"{group}-a"]
    assert store.list_solution_versions(group, "other") == []


def test_deleting_a_solution_deletes_its_versions(store: Store, group: str) -> None:
    store.put_solution(solution(group))
    store.save_solution_version(version(group, f"{group}-x"))
    store.delete_solution(group, "for-you")
    with pytest.raises(NotFound):
        store.get_solution_version(f"{group}-x")
