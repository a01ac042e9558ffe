"""Synthetic streaming-service data with planted structure, for the demo and for tests.

The generative story (``docs/demo-data.md`` tells it at length): a catalogue of films and series
episodes with genres, Zipf-like popularity and creation times; users with a sparse Dirichlet taste
over genres and skewed activity; sessions of encounters, each a view that may go on to a click and
a watch; items drawn from taste x popularity among the items that exist at that moment; and a
watched episode usually followed by the next episode of the same series.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from tastebud.errors import InvalidInput

_log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

GENRE_NAMES = (
    "Drama", "Comedy", "Thriller", "Documentary", "Sci-Fi", "Romance", "Horror", "Animation",
    "Crime", "Fantasy", "Action", "Mystery", "Family", "Adventure", "History", "Music",
    "Western", "War", "Sport", "Biography",
)  # fmt: skip
TIERS = ("free", "gold", "platinum")
AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
EVENT_TYPES = ("view", "click", "watch")

_DAY = 86_400
_HOUR = 3_600
_WEEK = 7 * _DAY
# Catalogue.
_SERIES_SHARE = 0.3  # of items that are series episodes
_SERIES_LENGTH = (3, 10)  # episodes per series, high end exclusive
_NEW_SHARE = 0.2  # of films and series first released inside the window
_CATALOGUE_YEARS = 6  # how far back the older items were added
_ZIPF_EXPONENT = 1.0
_EPISODE_DECAY = 0.8  # popularity ratio between episode k+1 and episode k
_SECONDARY_GENRE_WEIGHT = 0.5
# Users.
_TASTE_CONCENTRATION = 0.1  # Dirichlet alpha per genre at average prevalence: sparse tastes
_TIER_SHARE = (0.65, 0.25, 0.10)
_TIER_ACTIVITY = (1.0, 1.3, 1.7)
_AGE_SHARE = (0.16, 0.27, 0.22, 0.16, 0.11, 0.08)
_LATE_JOIN_SHARE = 0.3  # users whose first visit falls inside the window
_MEDIAN_SESSIONS_PER_DAY = 8.0 / 120  # a median user visits about twice a month
_SESSION_SPREAD = 1.0  # sigma of the log-normal number of sessions
# Behaviour.
_MEAN_EXTRA_ENCOUNTERS = 2.0  # per session, beyond the first
_LEVEL_SHARE = (0.5, 0.2, 0.3)  # an encounter stops at view, click or watch
_EXPLORE = (0.4, 0.2, 0.08)  # chance that taste is ignored, by level: watches are most personal
_CONTINUE_SERIES = 0.7  # chance that the next watch after episode k is episode k+1
_SESSION_GAP = 2 * _HOUR  # least time between two sessions of a user
_IMPRESSION_SIZE = (5, 10)
_MAX_REDRAWS = 8


@dataclass(frozen=True, eq=False)
class LatentTruth:
    """The hidden variables behind the data, aligned with the rows of ``items`` and ``users``."""

    genres: tuple[str, ...]
    user_taste: FloatArray  # (n_users, n_genres), rows sum to 1
    item_genre_weight: FloatArray  # (n_items, n_genres): 1 main genre, 0.5 secondary, else 0
    item_popularity: FloatArray  # (n_items,) Zipf weight before taste
    item_series: IntArray  # (n_items,) series index, -1 for a film
    item_episode: IntArray  # (n_items,) episode number from 1, 0 for a film
    next_episode: IntArray  # (n_items,) row of the next episode, -1 if none
    item_runtime: FloatArray  # (n_items,) minutes


@dataclass(frozen=True, eq=False)
class SyntheticData:
    """The three datasets of a demo dataset group, plus the truth they were drawn from."""

    items: pl.DataFrame
    users: pl.DataFrame
    interactions: pl.DataFrame
    truth: LatentTruth

    def write_csv(self, folder: Path) -> dict[str, Path]:
        """Write ``interactions.csv``, ``items.csv`` and ``users.csv`` into ``folder``."""
        frames = {"interactions": self.interactions, "items": self.items, "users": self.users}
        return write_csv(folder, frames)


def write_csv(folder: Path, frames: dict[str, pl.DataFrame]) -> dict[str, Path]:
    """Write each frame to ``folder/<name>.csv``; returns the paths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.csv" for name in frames}
    for name, frame in frames.items():
        frame.write_csv(paths[name])
    return paths


@dataclass(frozen=True)
class _Catalogue:
    genre_weight: FloatArray
    popularity: FloatArray
    creation: IntArray
    series: IntArray
    episode: IntArray
    next_episode: IntArray
    runtime: FloatArray
    year: IntArray
    price: FloatArray
    titles: list[str]
    genre_lists: list[list[int]]
    prevalence: FloatArray


@dataclass(frozen=True)
class _People:
    tier: IntArray
    age_group: IntArray
    taste: FloatArray
    join: IntArray
    sessions: IntArray


@dataclass(frozen=True)
class _Plan:
    """One row per encounter (a view that may go on to a click and a watch), by user and time."""

    user: IntArray
    session: IntArray
    level: IntArray  # 1 view, 2 view+click, 3 view+click+watch
    times: IntArray  # (3, n_encounters): view, click and watch times
    budget: FloatArray  # minutes the user is willing to watch
    n_sessions: int
    n_users: int


def generate(
    *,
    n_users: int = 2000,
    n_items: int = 800,
    n_genres: int = 12,
    days: int = 120,
    seed: int = 0,
    end_timestamp: int = 1_767_225_600,
) -> SyntheticData:
    """Generate items, users and interactions with planted, measurable structure.

    Same arguments, same frames. Interactions lie in ``[end - days, end)``; see
    ``docs/demo-data.md`` for the generative story and the columns.

    Raises:
        InvalidInput: an argument is out of range.
    """
    _check_arguments(n_users=n_users, n_items=n_items, n_genres=n_genres, days=days, seed=seed)
    started = time.perf_counter()
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]
    window = (end_timestamp - days * _DAY, end_timestamp)
    catalogue = _make_catalogue(rngs[0], n_items, n_genres, window)
    people = _make_users(rngs[1], n_users, catalogue.prevalence, window)
    plan = _plan_encounters(rngs[2], people, window)
    chosen = _choose_items(rngs[3], plan, people.taste, catalogue, window)
    shelves = _impressions(rngs[4], plan, chosen, catalogue)
    genres = GENRE_NAMES[:n_genres]
    data = SyntheticData(
        items=_items_frame(catalogue, genres),
        users=_users_frame(people),
        interactions=_interactions_frame(plan, chosen, shelves, catalogue),
        truth=LatentTruth(
            genres=genres,
            user_taste=people.taste,
            item_genre_weight=catalogue.genre_weight,
            item_popularity=catalogue.popularity,
            item_series=catalogue.series,
            item_episode=catalogue.episode,
            next_episode=catalogue.next_episode,
            item_runtime=catalogue.runtime,
        ),
    )
    _log.info(
        "synthetic data done users=%d items=%d interactions=%d seconds=%.2f",
        n_users,
        n_items,
        data.interactions.height,
        time.perf_counter() - started,
    )
    return data


def _check_arguments(*, n_users: int, n_items: int, n_genres: int, days: int, seed: int) -> None:
    limits = {
        "n_users": (n_users, 1),
        "n_items": (n_items, 20),
        "n_genres": (n_genres, 2),
        "days": (days, 1),
        "seed": (seed, 0),
    }
    for name, (value, low) in limits.items():
        if value < low:
            raise InvalidInput(f"generate.{name}: expected at least {low}, got {value}")
    if n_genres > len(GENRE_NAMES):
        raise InvalidInput(
            f"generate.n_genres: expected at most {len(GENRE_NAMES)}, got {n_genres}"
        )


# -- catalogue ------------------------------------------------------------------------------------


def _make_catalogue(
    rng: np.random.Generator, n_items: int, n_genres: int, window: tuple[int, int]
) -> _Catalogue:
    prevalence = rng.dirichlet(np.full(n_genres, 4.0))
    unit, episode, unit_length = _series_layout(rng, n_items)
    n_units = len(unit_length)
    is_series = unit_length > 1
    is_new = rng.permutation(n_units) < round(_NEW_SHARE * n_units)
    unit_weight, genre_lists = _unit_genres(rng, prevalence, n_units)
    unit_popularity = (rng.permutation(n_units) + 1.0) ** -_ZIPF_EXPONENT
    popularity = unit_popularity[unit] * _EPISODE_DECAY ** np.maximum(episode - 1, 0)

    start, end = window
    first_release = np.where(
        is_new,
        rng.uniform(start + 1, end - _HOUR, n_units),
        rng.uniform(start - _CATALOGUE_YEARS * 365 * _DAY, start - _DAY, n_units),
    ).astype(np.int64)
    # Episodes come out weekly, squeezed when a new series would otherwise end in the future.
    cadence = np.minimum(_WEEK, (end - _HOUR - first_release) / np.maximum(unit_length - 1, 1))
    creation = (first_release[unit] + np.maximum(episode - 1, 0) * cadence[unit]).astype(np.int64)
    runtime, year, price = _unit_details(rng, is_series, is_new, first_release)
    names = _titles(rng, n_units)
    titles = [
        f"{names[u]}: Episode {e}" if e else names[u]
        for u, e in zip(unit.tolist(), episode.tolist(), strict=True)
    ]

    # Item ids follow creation order, as an auto-increment key would.
    order = np.lexsort((episode, unit, creation))
    position = np.empty(n_items, np.int64)
    position[order] = np.arange(n_items)
    follows = np.flatnonzero((episode[:-1] > 0) & (unit[1:] == unit[:-1]))
    next_episode = np.full(n_items, -1, np.int64)
    next_episode[position[follows]] = position[follows + 1]
    return _Catalogue(
        genre_weight=unit_weight[unit][order],
        popularity=popularity[order],
        creation=creation[order],
        series=np.where(is_series[unit], unit, -1)[order],
        episode=episode[order],
        next_episode=next_episode,
        runtime=runtime[unit][order],
        year=year[unit][order],
        price=price[unit][order],
        titles=[titles[i] for i in order.tolist()],
        genre_lists=[genre_lists[u] for u in unit[order].tolist()],
        prevalence=prevalence,
    )


def _unit_genres(
    rng: np.random.Generator, prevalence: FloatArray, n_units: int
) -> tuple[FloatArray, list[list[int]]]:
    """1-3 genres per film or series, main genre first: weights matrix and genre lists."""
    n_genres = len(prevalence)
    # Gumbel keys rank genres without replacement, each draw proportional to prevalence.
    ranked = np.argsort(-(np.log(prevalence) + rng.gumbel(size=(n_units, n_genres))), axis=1)
    count = rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15], size=n_units)
    weight = np.zeros((n_units, n_genres))
    rows = np.arange(n_units)
    weight[rows, ranked[:, 0]] = 1.0
    for extra in range(1, min(3, n_genres)):
        has = count > extra
        weight[rows[has], ranked[has, extra]] = _SECONDARY_GENRE_WEIGHT
    return weight, [ranked[u, : count[u]].tolist() for u in range(n_units)]


def _unit_details(
    rng: np.random.Generator, is_series: BoolArray, is_new: BoolArray, first_release: IntArray
) -> tuple[FloatArray, IntArray, FloatArray]:
    """Runtime in minutes, release year and price of each film or series."""
    n_units = len(is_series)
    runtime = np.where(is_series, rng.uniform(20, 60, n_units), rng.uniform(75, 160, n_units))
    # Back-catalogue films were released years before the service added them.
    release_year = _year(first_release)
    age = np.floor(rng.exponential(7.0, n_units)).astype(np.int64)
    back_catalogue = ~is_series & ~is_new
    year = np.where(back_catalogue, np.maximum(release_year - age, 1950), release_year)
    film_price = np.where(
        is_new,
        rng.choice([4.99, 9.99, 14.99, 19.99], size=n_units),
        rng.choice([0.0, 2.99, 3.99, 4.99, 9.99], p=[0.35, 0.2, 0.2, 0.15, 0.1], size=n_units),
    )
    episode_price = rng.choice([0.0, 1.99], p=[0.7, 0.3], size=n_units)
    price = np.where(is_series, episode_price, film_price)
    return np.round(runtime).astype(np.float64), year.astype(np.int64), price.astype(np.float64)


def _series_layout(rng: np.random.Generator, n_items: int) -> tuple[IntArray, IntArray, IntArray]:
    """Series first, then films: (unit of each item, episode number or 0, length of each unit)."""
    lengths = rng.integers(*_SERIES_LENGTH, size=n_items)
    n_series = int(np.searchsorted(np.cumsum(lengths), _SERIES_SHARE * n_items, side="right"))
    n_episodes = int(lengths[:n_series].sum())
    unit_length = np.concatenate([lengths[:n_series], np.ones(n_items - n_episodes, np.int64)])
    unit = np.repeat(np.arange(len(unit_length)), unit_length)
    first = np.cumsum(unit_length) - unit_length
    episode = np.arange(n_items) - first[unit] + 1
    episode[n_episodes:] = 0
    return unit, episode, unit_length


_ADJECTIVES = (
    "Silent", "Golden", "Hidden", "Last", "Broken", "Crimson", "Distant", "Endless", "Forgotten",
    "Midnight", "Wild", "Quiet", "Burning", "Frozen", "Hollow", "Secret", "Velvet", "Iron",
    "Paper", "Silver", "Electric", "Lonely", "Restless", "Bright", "Northern", "Lost", "Final",
    "Little", "Gentle", "Wandering", "Sleeping", "Shattered", "Invisible", "Painted", "Borrowed",
    "Scarlet", "Emerald", "Winter", "Salt", "Stolen",
)  # fmt: skip
_NOUNS = (
    "Harbor", "Garden", "Frontier", "Signal", "Orchard", "Lantern", "Empire", "Voyage", "Witness",
    "Kingdom", "Archive", "Horizon", "Circus", "Republic", "Meridian", "Detective", "Mountain",
    "River", "Station", "Island", "Engine", "Letter", "Promise", "Shadow", "Mirror", "Crown",
    "Storm", "Forest", "Citadel", "Lighthouse", "Carnival", "Compass", "Orchestra", "Tide",
    "Falcon", "Sparrow", "Fortune", "Echo", "Labyrinth", "Comet",
)  # fmt: skip
_OF_WHAT = (
    "Ash", "Glass", "Smoke", "Salt", "Stars", "Thunder", "Dust", "Bones", "Lies", "Light",
    "Rain", "Roses", "Ghosts", "Tomorrow", "Strangers", "Kings", "Wolves", "Fire", "Silence",
    "Summer",
)  # fmt: skip


def _titles(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` unique titles; past the pool's size they repeat as numbered sequels."""
    pool = [f"The {a} {b}" for a in _ADJECTIVES for b in _NOUNS]
    pool += [f"{b} of {c}" for b in _NOUNS for c in _OF_WHAT]
    pool += [f"The {b} and the {c}" for b in _NOUNS for c in _NOUNS if b != c]
    picks = rng.permutation(len(pool))
    return [
        pool[picks[j % len(pool)]] + (f" {j // len(pool) + 1}" if j >= len(pool) else "")
        for j in range(n)
    ]


def _year(timestamps: IntArray) -> IntArray:
    years = timestamps.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64)
    return years + 1970


# -- users and their sessions ---------------------------------------------------------------------


def _make_users(
    rng: np.random.Generator, n_users: int, prevalence: FloatArray, window: tuple[int, int]
) -> _People:
    start, end = window
    tier = rng.choice(len(TIERS), p=_TIER_SHARE, size=n_users)
    age_group = rng.choice(len(AGE_GROUPS), p=_AGE_SHARE, size=n_users)
    alpha = _TASTE_CONCENTRATION * len(prevalence) * prevalence
    taste = np.nan_to_num(rng.dirichlet(alpha, size=n_users))
    taste[taste.sum(axis=1) == 0] = 1.0  # a degenerate draw falls back to no preference
    taste /= taste.sum(axis=1, keepdims=True)
    late = rng.random(n_users) < _LATE_JOIN_SHARE
    join = np.where(late, start + rng.random(n_users) * 0.8 * (end - start), start)
    span_days = (end - join) / _DAY
    activity = rng.lognormal(np.log(_MEDIAN_SESSIONS_PER_DAY), _SESSION_SPREAD, n_users)
    sessions = np.round(activity * np.asarray(_TIER_ACTIVITY)[tier] * span_days)
    return _People(
        tier=tier,
        age_group=age_group,
        taste=taste,
        join=join.astype(np.int64),
        sessions=np.maximum(sessions, 1).astype(np.int64),
    )


def _plan_encounters(rng: np.random.Generator, people: _People, window: tuple[int, int]) -> _Plan:
    n_users = len(people.join)
    session_user = np.repeat(np.arange(n_users), people.sessions)
    n_sessions = len(session_user)
    session = np.repeat(np.arange(n_sessions), 1 + rng.poisson(_MEAN_EXTRA_ENCOUNTERS, n_sessions))
    user = session_user[session]
    n = len(session)
    level = rng.choice([1, 2, 3], p=_LEVEL_SHARE, size=n)
    # Every user gets at least three events: a thin user's first encounter ends in a watch.
    thin = np.bincount(user, weights=level, minlength=n_users) < 3
    level[np.searchsorted(user, np.flatnonzero(thin))] = 3

    click_delay = rng.uniform(5, 45, n)
    watch_delay = rng.uniform(3, 20, n)
    budget = np.clip(rng.lognormal(np.log(35.0), 0.8, n), 1.0, 180.0)
    busy = np.select(
        [level == 1, level == 2],
        [rng.uniform(20, 180, n), click_delay + rng.uniform(20, 120, n)],
        click_delay + watch_delay + budget * 60,
    )
    slot = busy + rng.uniform(10, 240, n)  # a few minutes until the next encounter
    offset_in_session = _exclusive_cumsum_by_group(slot, session)

    # Spread the sessions over the user's span in random order-statistics, never overlapping;
    # a user with more sessions than the span holds is squeezed instead.
    need = (
        np.bincount(session, weights=slot, minlength=n_sessions).astype(np.float64) + _SESSION_GAP
    )
    total = np.bincount(session_user, weights=need, minlength=n_users).astype(np.float64)
    span = (window[1] - people.join).astype(np.float64)
    free = np.maximum(span - total, 0.0)
    scale = np.minimum(1.0, span / total)
    spread = np.sort(session_user + rng.random(n_sessions)) - session_user
    session_offset = spread * free[session_user] + _exclusive_cumsum_by_group(need, session_user)
    view = people.join[user] + scale[user] * (session_offset[session] + offset_in_session)
    click = view + scale[user] * click_delay
    watch = click + scale[user] * watch_delay
    times = np.floor(np.stack([view, click, watch])).astype(np.int64)
    return _Plan(user, session, level, times, budget, n_sessions, n_users)


def _exclusive_cumsum_by_group(values: FloatArray, group: IntArray) -> FloatArray:
    """Running sum before each element within its group; ``group`` must be sorted."""
    running = np.cumsum(values) - values
    return running - running[np.searchsorted(group, group)]


# -- item choice ----------------------------------------------------------------------------------


def _choose_items(
    rng: np.random.Generator,
    plan: _Plan,
    taste: FloatArray,
    catalogue: _Catalogue,
    window: tuple[int, int],
) -> IntArray:
    """P(item | user) = sum over genres of taste x popularity-within-genre, among existing items."""
    n = len(plan.user)
    n_genres = taste.shape[1]
    genre_cdf = np.cumsum(taste, axis=1)[plan.user]
    genre = np.minimum((genre_cdf < rng.random(n)[:, None]).sum(axis=1), n_genres - 1)
    explore = rng.random(n) < np.asarray(_EXPLORE)[plan.level - 1]
    source = np.where(explore, n_genres, genre)  # the last row is popularity alone
    weights = np.vstack([catalogue.genre_weight.T * catalogue.popularity, catalogue.popularity])
    view_time = plan.times[0]
    item = _draw(weights, source, rng.random(n))
    for _ in range(_MAX_REDRAWS):
        early = np.flatnonzero(catalogue.creation[item] > view_time)
        if early.size == 0:
            break
        item[early] = _draw(weights, source[early], rng.random(early.size))
    early = np.flatnonzero(catalogue.creation[item] > view_time)
    if early.size:
        existing = catalogue.creation <= window[0]
        item[early] = _draw(weights * existing, source[early], rng.random(early.size))
    return _continue_series(rng, plan, item, catalogue)


def _draw(weights: FloatArray, source: IntArray, uniform: FloatArray) -> IntArray:
    """Inverse-CDF draw of one column per element from the row ``source`` of ``weights``."""
    weights = weights.copy()
    empty = weights.sum(axis=1) == 0
    weights[empty] = weights[-1] if weights[-1].sum() > 0 else 1.0
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    picked = np.empty(len(source), np.int64)
    for row in range(len(weights)):
        hit = source == row
        picked[hit] = np.searchsorted(cdf[row], uniform[hit], side="right")
    np.minimum(picked, weights.shape[1] - 1, out=picked)
    return picked


def _continue_series(
    rng: np.random.Generator, plan: _Plan, item: IntArray, catalogue: _Catalogue
) -> IntArray:
    """After a watched episode k, the user's next watch is episode k+1 with a fixed chance."""
    watched = np.flatnonzero(plan.level == 3)
    if watched.size == 0:
        return item
    user, when, own_pick = plan.user[watched], plan.times[0][watched], item[watched]
    follows_own = np.concatenate([[False], user[1:] == user[:-1]])
    wants_next = follows_own & (rng.random(len(watched)) < _CONTINUE_SERIES)
    current = own_pick
    # Each pass settles one more step of every binge chain; chains are shorter than a series.
    for _ in range(_SERIES_LENGTH[1] + 1):
        successor = catalogue.next_episode[np.concatenate([[0], current[:-1]])]
        released = catalogue.creation[np.maximum(successor, 0)] <= when
        updated = np.where(wants_next & (successor >= 0) & released, successor, own_pick)
        if np.array_equal(updated, current):
            break
        current = updated
    item = item.copy()
    item[watched] = current
    return item


def _impressions(
    rng: np.random.Generator, plan: _Plan, chosen: IntArray, catalogue: _Catalogue
) -> pl.Series:
    """The shelf shown at each view: the chosen item among 4-9 others that exist at that time."""
    n, n_items = len(chosen), len(catalogue.popularity)
    low, high = _IMPRESSION_SIZE
    when = plan.times[0]
    need = rng.integers(low - 1, high, n)
    others = np.full((n, high - 1), -1, np.int64)
    # Shelves lean to popular items, less steeply than choices; a row still short after that
    # (a young, small catalogue) also tries up to 256 other items in random order.
    shelf_weight = np.sqrt(catalogue.popularity)[None, :]
    candidates = _draw(shelf_weight, np.zeros(n * 16, np.int64), rng.random(n * 16)).reshape(n, 16)
    rows = np.arange(n)
    for last_pass in (False, True):
        kept = _usable(candidates, chosen[rows], catalogue.creation, when[rows], need[rows])
        at_row, at_column = np.nonzero(kept)
        rank = np.cumsum(kept, axis=1)[at_row, at_column] - 1
        others[rows[at_row], rank] = candidates[at_row, at_column]
        short = kept.sum(axis=1) < need[rows]
        if last_pass or not short.any():
            break
        rows = rows[short]
        shuffled = rng.permuted(np.tile(np.arange(n_items), (len(rows), 1)), axis=1)
        candidates = np.hstack([candidates[short], shuffled[:, :256]])

    count = (others >= 0).sum(axis=1)
    slot = np.floor(rng.random(n) * (count + 1)).astype(np.int64)  # where the chosen item sits
    column = np.arange(high)[None, :]
    source = np.clip(column - (column > slot[:, None]), 0, high - 2)
    shelf = np.where(
        column == slot[:, None], chosen[:, None], np.take_along_axis(others, source, 1)
    )
    # Ids share one width, so the shelf is the joined row cut after its last real item.
    ids = pl.Series(_ids("i", n_items))
    width = len(ids[0]) + 1
    joined = pl.DataFrame({f"p{j}": ids.gather(np.maximum(shelf[:, j], 0)) for j in range(high)})
    length = pl.Series((count + 1) * width - 1)
    return joined.select(
        pl.concat_str(pl.all(), separator="|").str.slice(0, pl.lit(length)).alias("IMPRESSION")
    )["IMPRESSION"]


def _usable(
    candidates: IntArray, chosen: IntArray, creation: IntArray, when: IntArray, need: IntArray
) -> BoolArray:
    """Mask of the first ``need`` candidates per row that are new to the row and already exist."""
    order = np.argsort(candidates, axis=1, kind="stable")
    ranked = np.take_along_axis(candidates, order, axis=1)
    repeat_ranked = np.zeros(ranked.shape, bool)
    repeat_ranked[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
    repeat = np.empty_like(repeat_ranked)
    np.put_along_axis(repeat, order, repeat_ranked, axis=1)
    usable = ~repeat & (candidates != chosen[:, None]) & (creation[candidates] <= when[:, None])
    first_needed: BoolArray = usable & (np.cumsum(usable, axis=1) <= need[:, None])
    return first_needed


# -- frames ---------------------------------------------------------------------------------------


def _ids(prefix: str, n: int) -> list[str]:
    width = max(4, len(str(n)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def _items_frame(catalogue: _Catalogue, genres: tuple[str, ...]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ITEM_ID": _ids("i", len(catalogue.titles)),
            "TITLE": catalogue.titles,
            "GENRES": ["|".join(genres[g] for g in row) for row in catalogue.genre_lists],
            "CREATION_TIMESTAMP": catalogue.creation,
            "YEAR": catalogue.year,
            "PRICE": catalogue.price,
        }
    )


def _users_frame(people: _People) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "USER_ID": _ids("u", len(people.tier)),
            "TIER": pl.Series(TIERS).gather(people.tier),
            "AGE_GROUP": pl.Series(AGE_GROUPS).gather(people.age_group),
        }
    )


def _interactions_frame(
    plan: _Plan, chosen: IntArray, shelves: pl.Series, catalogue: _Catalogue
) -> pl.DataFrame:
    encounter = np.repeat(np.arange(len(chosen)), plan.level)
    step = np.arange(len(encounter)) - np.repeat(np.cumsum(plan.level) - plan.level, plan.level)
    item = chosen[encounter]
    minutes = np.round(np.minimum(plan.budget[encounter], catalogue.runtime[item]), 1)
    frame = pl.DataFrame(
        {
            "USER_ID": pl.Series(_ids("u", plan.n_users)).gather(plan.user[encounter]),
            "ITEM_ID": pl.Series(_ids("i", len(catalogue.titles))).gather(item),
            "TIMESTAMP": plan.times[step, encounter],
            "EVENT_TYPE": pl.Series(EVENT_TYPES).gather(step),
            "EVENT_VALUE": pl.Series(np.where(step == 2, minutes, np.nan)).fill_nan(None),
            "IMPRESSION": shelves.gather(encounter),
            "SESSION_ID": pl.Series(_ids("s", plan.n_sessions)).gather(plan.session[encounter]),
        }
    )
    impression = pl.when(pl.col("EVENT_TYPE") == "view").then(pl.col("IMPRESSION"))
    return frame.with_columns(IMPRESSION=impression).sort("TIMESTAMP", maintain_order=True)
