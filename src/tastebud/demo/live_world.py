"""A generated live-streaming app: hosts, the shows they put on air, viewers and their sessions.

Each viewer has hidden tastes: how much they like each category and a few favourite hosts. A
viewer who opens the app sees the shows on air, ordered as the app orders them, and joins one
or none; how long they stay grows with how much they like it. The history (60 days by default,
ending now) is what tastebud imports and learns from; :meth:`World.choose` plays a viewer facing a
list, so an experiment can be run against the same hidden tastes (``live_shows.py``).

Event types: ``join`` (its ``IMPRESSION`` lists the shows that were on screen), ``leave`` with
the minutes watched as ``EVENT_VALUE`` (same ``SESSION_ID``), and ``complete`` when the viewer
stayed to the end of the show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

CATEGORIES = ("gaming", "music", "talk", "cooking", "sports", "art", "travel", "science")
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_DAY = 86_400


@dataclass(frozen=True)
class World:
    """The shows, the hosts and the viewers' hidden tastes."""

    show_ids: list[str]
    show_host: IntArray  # host index per show
    show_category: IntArray  # category index per show
    show_start: IntArray  # epoch seconds
    show_end: IntArray
    host_ids: list[str]
    host_quality: FloatArray
    viewer_ids: list[str]
    taste: FloatArray  # (viewers x categories), rows sum to 1
    favourite: npt.NDArray[np.bool_]  # (viewers x hosts)

    def on_air(self, at: int) -> IntArray:
        """Indices of the shows on air at ``at``."""
        return np.flatnonzero((self.show_start <= at) & (at < self.show_end))

    def appeal(self, viewer: int, shows: IntArray) -> FloatArray:
        """How much ``viewer`` likes each show (log scale, hidden from tastebud)."""
        hosts, categories = self.show_host[shows], self.show_category[shows]
        appeal: FloatArray = (
            np.log(self.taste[viewer, categories] + 0.02)
            + 1.5 * self.favourite[viewer, hosts]
            + self.host_quality[hosts]
        )
        return appeal

    def choose(self, viewer: int, ordered: IntArray, rng: np.random.Generator) -> int | None:
        """The position of the show ``viewer`` joins in a list shown in this order, or None.

        Viewers look down the list less and less (position bias 1/log2(position + 2)) and join
        a show they look at with a chance that grows with its appeal; at most one per visit."""
        if len(ordered) == 0:
            return None
        looked = 1.0 / np.log2(np.arange(len(ordered)) + 2.0)
        joins = looked * _sigmoid(self.appeal(viewer, ordered) - 2.5)
        hits = np.flatnonzero(rng.random(len(ordered)) < joins)
        return int(hits[0]) if len(hits) else None

    def minutes(self, viewer: int, show: int, at: int, rng: np.random.Generator) -> float:
        """How long ``viewer`` stays on ``show`` joined at ``at`` (to its end at most)."""
        mean = 4.0 + 40.0 * _sigmoid(float(self.appeal(viewer, np.array([show]))[0]))
        left = (int(self.show_end[show]) - at) / 60.0
        return min(float(rng.exponential(mean)), left)


def generate(
    *, n_viewers: int = 1500, n_hosts: int = 40, days: int = 60, visits_per_viewer: float = 60.0,
    now: int, seed: int = 0,
) -> tuple[World, dict[str, pl.DataFrame]]:  # fmt: skip
    """The world and its history as the three data sets (``interactions``, ``items``,
    ``users``), ending at ``now`` (epoch seconds), with some shows still on air then."""
    if n_viewers < 10 or n_hosts < 4 or days < 1 or visits_per_viewer <= 0:
        raise ValueError("need at least 10 viewers, 4 hosts, 1 day and some visits")
    rng = np.random.default_rng(seed)
    world = _world(rng, n_viewers=n_viewers, n_hosts=n_hosts, days=days, now=now)
    interactions = _history(world, rng, visits=int(n_viewers * visits_per_viewer), now=now,
                            days=days)  # fmt: skip
    return world, {"interactions": interactions, "items": _items(world),
                   "users": pl.DataFrame({"USER_ID": world.viewer_ids})}  # fmt: skip


def _world(rng: np.random.Generator, *, n_viewers: int, n_hosts: int, days: int, now: int) -> World:
    host_category = rng.integers(0, len(CATEGORIES), n_hosts)
    # Each host goes on air about every 1.5 days at their own hour, for 1 to 3 hours.
    starts, hosts = [], []
    for host in range(n_hosts):
        hour = rng.uniform(0, 24) * 3600
        at = now - days * _DAY + hour + rng.uniform(0, 1.5 * _DAY)
        while at < now:
            starts.append(at)
            hosts.append(host)
            at += rng.uniform(0.8, 2.2) * _DAY
    # Half the hosts are on air now.
    for host in rng.choice(n_hosts, n_hosts // 2, replace=False):
        starts.append(now - rng.uniform(0, 3600))
        hosts.append(host)
    start = np.array(starts, dtype=np.int64)
    order = np.argsort(start, kind="stable")
    start, host_of = start[order], np.array(hosts, dtype=np.int64)[order]
    end = start + rng.integers(3600, 3 * 3600, len(start))
    # A few shows leave their host's usual category.
    category = np.where(rng.random(len(start)) < 0.85, host_category[host_of],
                        rng.integers(0, len(CATEGORIES), len(start)))  # fmt: skip
    taste = rng.dirichlet(np.full(len(CATEGORIES), 0.4), n_viewers)
    favourite = np.zeros((n_viewers, n_hosts), dtype=bool)
    for viewer in range(n_viewers):  # favourites lean to the categories the viewer likes
        weights = taste[viewer, host_category] + 0.01
        picks = rng.choice(n_hosts, 3, replace=False, p=weights / weights.sum())
        favourite[viewer, picks] = True
    return World(
        show_ids=[f"show{i}" for i in range(len(start))], show_host=host_of,
        show_category=category.astype(np.int64), show_start=start, show_end=end,
        host_ids=[f"host{h}" for h in range(n_hosts)],
        host_quality=rng.normal(0.0, 0.4, n_hosts), viewer_ids=[f"v{i}" for i in range(n_viewers)],
        taste=taste, favourite=favourite,
    )  # fmt: skip


def _history(
    world: World, rng: np.random.Generator, *, visits: int, now: int, days: int
) -> pl.DataFrame:
    """Visits at random times; each shows the on-air list by the rule order the app used then
    (most-watched hosts first) and may end in a session."""
    host_views = np.ones(len(world.host_ids))
    times = np.sort(rng.integers(now - days * _DAY, now - 60, visits))
    viewers = rng.integers(0, len(world.viewer_ids), visits)
    rows: list[tuple[str, str, int, str, float | None, str, str | None]] = []
    for visit, (at, viewer) in enumerate(zip(times.tolist(), viewers.tolist(), strict=True)):
        live = world.on_air(at)
        if len(live) == 0:
            continue
        shown = live[np.argsort(-host_views[world.show_host[live]], kind="stable")][:20]
        position = world.choose(viewer, shown, rng)
        if position is None:
            continue
        show = int(shown[position])
        minutes = world.minutes(viewer, show, at, rng)
        user, item, session = world.viewer_ids[viewer], world.show_ids[show], f"s{visit}"
        impression = "|".join(world.show_ids[s] for s in shown)
        leave = at + max(1, int(minutes * 60))
        rows.append((user, item, at, "join", None, session, impression))
        rows.append((user, item, leave, "leave", round(minutes, 1), session, None))
        if leave >= int(world.show_end[show]):
            rows.append((user, item, leave, "complete", None, session, None))
        host_views[world.show_host[show]] += 1
    columns = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "SESSION_ID",
               "IMPRESSION"]  # fmt: skip
    return pl.DataFrame(rows, schema=columns, orient="row").sort("TIMESTAMP", maintain_order=True)


def _items(world: World) -> pl.DataFrame:
    return pl.DataFrame({
        "ITEM_ID": world.show_ids,
        "HOST": [world.host_ids[h] for h in world.show_host],
        "CATEGORY": [CATEGORIES[c] for c in world.show_category],
        "CREATION_TIMESTAMP": world.show_start,
        "END_TIMESTAMP": world.show_end,
    })  # fmt: skip


def _sigmoid(x: FloatArray | float) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64))))
