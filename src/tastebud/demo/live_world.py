"""A generated live-streaming app: hosts' channels, the shows they put on air, viewers and their
sessions.

The items are the channels (one per host, with a CATEGORY); a channel is on air while one of its
host's shows runs. Each viewer has hidden tastes: how much they like each category and a few
favourite hosts. A viewer who opens the app sees the channels on air, ordered as the app orders
them, and joins one or none; how long they stay grows with how much they like it. The history
(60 days by default, ending now) is what tastebud imports and learns from; :meth:`World.choose`
plays a viewer facing a list, so an experiment can run against the same hidden tastes.

Event types: ``join`` (its ``IMPRESSION`` lists the channels that were on screen), ``leave``
with the minutes watched as ``EVENT_VALUE`` (same ``SESSION_ID``), and ``complete`` when the
viewer stayed to the end of the show.
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

    show_host: IntArray  # host (channel) index per show
    show_start: IntArray  # epoch seconds
    show_end: IntArray
    host_ids: list[str]  # the channels: the items
    host_category: IntArray
    host_quality: FloatArray
    host_created: IntArray
    viewer_ids: list[str]
    taste: FloatArray  # (viewers x categories), rows sum to 1
    favourite: npt.NDArray[np.bool_]  # (viewers x hosts)

    def on_air(self, at: int) -> IntArray:
        """The channels on air at ``at`` (host indices, each once)."""
        live = (self.show_start <= at) & (at < self.show_end)
        return np.unique(self.show_host[live])

    def show_end_of(self, host: int, at: int) -> int:
        """When the show ``host`` has on air at ``at`` ends."""
        live = (self.show_host == host) & (self.show_start <= at) & (at < self.show_end)
        return int(self.show_end[live].max())

    def appeal(self, viewer: int, hosts: IntArray) -> FloatArray:
        """How much ``viewer`` likes each channel (log scale, hidden from tastebud)."""
        categories = self.host_category[hosts]
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
        joins = looked * _sigmoid(self.appeal(viewer, ordered) - 1.0)
        hits = np.flatnonzero(rng.random(len(ordered)) < joins)
        return int(hits[0]) if len(hits) else None

    def minutes(self, viewer: int, host: int, at: int, rng: np.random.Generator) -> float:
        """How long ``viewer`` stays on channel ``host`` joined at ``at`` (to the show's end at
        most)."""
        mean = 4.0 + 40.0 * _sigmoid(float(self.appeal(viewer, np.array([host]))[0]))
        left = (self.show_end_of(host, at) - at) / 60.0
        return min(float(rng.exponential(mean)), left)


def generate(
    *, n_viewers: int = 1000, n_hosts: int = 40, days: int = 60, visits_per_viewer: float = 50.0,
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
    # Each host goes on air about once a day around their own hour, for 2 to 6 hours.
    starts: list[float] = []
    hosts: list[int] = []
    for host in range(n_hosts):
        hour = rng.uniform(0, 24) * 3600
        at = now - days * _DAY + hour + rng.uniform(0, 1.5 * _DAY)
        while at < now:
            starts.append(at)
            hosts.append(host)
            at += rng.uniform(0.5, 1.5) * _DAY
    # Half the hosts are on air now.
    for host in rng.choice(n_hosts, n_hosts // 2, replace=False):
        starts.append(now - rng.uniform(0, 3600))
        hosts.append(host)
    start = np.array(starts, dtype=np.int64)
    order = np.argsort(start, kind="stable")
    start, host_of = start[order], np.array(hosts, dtype=np.int64)[order]
    end = start + rng.integers(2 * 3600, 6 * 3600, len(start))
    taste = rng.dirichlet(np.full(len(CATEGORIES), 0.4), n_viewers)
    favourite = np.zeros((n_viewers, n_hosts), dtype=bool)
    for viewer in range(n_viewers):  # favourites lean to the categories the viewer likes
        weights = taste[viewer, host_category] + 0.01
        picks = rng.choice(n_hosts, 3, replace=False, p=weights / weights.sum())
        favourite[viewer, picks] = True
    return World(
        show_host=host_of, show_start=start, show_end=end,
        host_ids=[f"host{h}" for h in range(n_hosts)], host_category=host_category,
        host_quality=rng.normal(0.0, 0.4, n_hosts),
        host_created=(now - days * _DAY - rng.integers(0, 365 * _DAY, n_hosts)).astype(np.int64),
        viewer_ids=[f"v{i}" for i in range(n_viewers)], taste=taste, favourite=favourite,
    )  # fmt: skip


def _history(
    world: World, rng: np.random.Generator, *, visits: int, now: int, days: int
) -> pl.DataFrame:
    """Visits at random times; each shows the channels on air by the rule order the app used
    then (most-watched first) and may end in a session."""
    host_views = np.ones(len(world.host_ids))
    times = np.sort(rng.integers(now - days * _DAY, now - 60, visits))
    viewers = rng.integers(0, len(world.viewer_ids), visits)
    rows: list[tuple[str, str, int, str, float | None, str, str | None]] = []
    for visit, (at, viewer) in enumerate(zip(times.tolist(), viewers.tolist(), strict=True)):
        live = world.on_air(at)
        if len(live) == 0:
            continue
        shown = live[np.argsort(-host_views[live], kind="stable")]
        position = world.choose(viewer, shown, rng)
        if position is None:
            continue
        host = int(shown[position])
        minutes = world.minutes(viewer, host, at, rng)
        user, item, session = world.viewer_ids[viewer], world.host_ids[host], f"s{visit}"
        impression = "|".join(world.host_ids[h] for h in shown)
        leave = at + max(1, int(minutes * 60))
        rows.append((user, item, at, "join", None, session, impression))
        rows.append((user, item, leave, "leave", round(minutes, 1), session, None))
        if leave >= world.show_end_of(host, at):
            rows.append((user, item, leave, "complete", None, session, None))
        host_views[host] += 1
    columns = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "SESSION_ID",
               "IMPRESSION"]  # fmt: skip
    return pl.DataFrame(rows, schema=columns, orient="row").sort("TIMESTAMP", maintain_order=True)


def _items(world: World) -> pl.DataFrame:
    return pl.DataFrame({
        "ITEM_ID": world.host_ids,
        "CATEGORY": [CATEGORIES[c] for c in world.host_category],
        "CREATION_TIMESTAMP": world.host_created,
    })  # fmt: skip


def _sigmoid(x: FloatArray | float) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64))))
