"""Synthetic travel-company data for the marketing scenario, with planted tastes.

Thirty routes (``LHR-JFK`` …) fly from three home airports to four regions. Each customer has a
home airport and a hidden favourite region; most of their searches are routes from home to that
region, and those searches turn into bookings more often. So a route's segment has a right
answer: the customers of its origin who favour its region (:meth:`TravelData.planted_share`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from tastebud.demo.synthetic import write_csv

CITIES = {
    "LHR": "London", "MAN": "Manchester", "EDI": "Edinburgh",
    "JFK": "New York", "BOS": "Boston", "LAX": "Los Angeles", "YYZ": "Toronto", "MCO": "Orlando",
    "CDG": "Paris", "FCO": "Rome", "BCN": "Barcelona", "LIS": "Lisbon", "AMS": "Amsterdam",
    "HND": "Tokyo", "SIN": "Singapore", "BKK": "Bangkok",
    "BGI": "Barbados", "MBJ": "Montego Bay", "PUJ": "Punta Cana",
}  # fmt: skip
REGIONS = {
    "North America": ("JFK", "BOS", "LAX", "YYZ", "MCO"),
    "Europe": ("CDG", "FCO", "BCN", "LIS", "AMS"),
    "Asia": ("HND", "SIN", "BKK"),
    "Caribbean": ("BGI", "MBJ", "PUJ"),
}
# Every home airport flies to every region, so each (home, region) taste has routes.
NETWORK = {
    "LHR": ("JFK", "BOS", "LAX", "YYZ", "CDG", "FCO", "BCN", "HND", "SIN", "BKK", "BGI", "MBJ"),
    "MAN": ("JFK", "BOS", "MCO", "BCN", "LIS", "AMS", "SIN", "BKK", "BGI", "PUJ"),
    "EDI": ("JFK", "YYZ", "CDG", "AMS", "FCO", "SIN", "BGI", "MBJ"),
}
_HOME_SHARE = (0.5, 0.3, 0.2)  # of customers, in NETWORK's order
_REGION_SHARE = (0.3, 0.35, 0.15, 0.2)  # favourite regions, in REGIONS' order
_BASE_FARE = {"North America": 420.0, "Europe": 90.0, "Asia": 610.0, "Caribbean": 560.0}
_MEAN_SEARCHES = 5.0  # per customer, beyond the first
_TASTE_SHARE = 0.8  # of searches: home airport to the favourite region
_HOME_SHARE_OF_REST = 0.75  # of the other searches: home airport, any region
_BOOKING_RATE = (0.25, 0.05)  # a search's chance to become a booking: taste, other
_DAYS = 90
_END = 1_772_323_200  # 2026-03-01 UTC: the data's "now", so a seed gives the same files
_FIRST = ("Amelia", "Oliver", "Isla", "George", "Ava", "Noah", "Mia", "Arthur", "Freya", "Leo",
          "Grace", "Harry", "Lily", "Jack", "Evie", "Oscar", "Sophia", "Alfie", "Ella",
          "Finn")  # fmt: skip
_LAST = ("Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans", "Patel", "Walker", "Wright",
         "Khan", "Hughes", "Clarke", "Murray", "Kelly", "Reid", "Shaw")  # fmt: skip


@dataclass(frozen=True, eq=False)
class TravelData:
    customers: pl.DataFrame  # USER_ID, NAME, EMAIL, HOME_AIRPORT
    routes: pl.DataFrame  # ITEM_ID, NAME, ORIGIN, DESTINATION, REGION, PRICE
    interactions: pl.DataFrame  # USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE (search, book)
    favourite_region: dict[str, str]  # planted, never imported: customer -> region

    def write_csv(self, folder: Path) -> dict[str, Path]:
        """Write ``users.csv``, ``items.csv`` and ``interactions.csv`` into ``folder``."""
        frames = {"users": self.customers, "items": self.routes, "interactions": self.interactions}
        return write_csv(folder, frames)

    def planted_share(self, customers: Sequence[str], route: str) -> float:
        """The share of ``customers`` whose home is the route's origin and whose favourite region
        is its region: how right a segment for ``route`` is."""
        origin, destination = route.split("-")
        region = _region_of(destination)
        home = dict(zip(self.customers["USER_ID"], self.customers["HOME_AIRPORT"], strict=True))
        hits = sum(home[c] == origin and self.favourite_region[c] == region for c in customers)
        return hits / len(customers) if customers else 0.0


def generate(*, n_customers: int = 3000, seed: int = 0) -> TravelData:
    """Customers, routes and about seven searches or bookings per customer."""
    rng = np.random.default_rng(seed)
    routes = _routes(rng)
    origins, regions = list(NETWORK), list(REGIONS)
    home = rng.choice(len(origins), size=n_customers, p=_HOME_SHARE)
    favourite = rng.choice(len(regions), size=n_customers, p=_REGION_SHARE)
    user = np.repeat(np.arange(n_customers), 1 + rng.poisson(_MEAN_SEARCHES, size=n_customers))
    route_origin = np.array([origins.index(o) for o in routes["ORIGIN"]])
    route_region = np.array([regions.index(r) for r in routes["REGION"]])
    draw = rng.random(len(user))
    taste = draw < _TASTE_SHARE
    at_home = ~taste & (draw < _TASTE_SHARE + (1 - _TASTE_SHARE) * _HOME_SHARE_OF_REST)
    route = rng.integers(0, routes.height, size=len(user))  # the rest: any route
    for o in range(len(origins)):
        mine = home[user] == o
        _pick(rng, route, at_home & mine, np.flatnonzero(route_origin == o))
        for r in range(len(regions)):
            wanted = taste & mine & (favourite[user] == r)
            _pick(rng, route, wanted, np.flatnonzero((route_origin == o) & (route_region == r)))
    booked = rng.random(len(user)) < np.where(taste, *_BOOKING_RATE)
    searched_at = _END - rng.integers(3600, _DAYS * 86_400, size=len(user))
    ids = [f"c{i:04d}" for i in range(n_customers)]
    searches = pl.DataFrame({"USER_ID": [ids[u] for u in user],
                             "ITEM_ID": routes["ITEM_ID"].gather(route),
                             "TIMESTAMP": searched_at, "EVENT_TYPE": "search"})  # fmt: skip
    bookings = searches.filter(pl.Series(booked)).with_columns(
        pl.col("TIMESTAMP") + 1800, EVENT_TYPE=pl.lit("book")
    )
    interactions = pl.concat([searches, bookings]).sort("TIMESTAMP", "USER_ID")
    customers = _customers(rng, ids, [origins[h] for h in home])
    planted = {c: regions[f] for c, f in zip(ids, favourite, strict=True)}
    return TravelData(customers, routes, interactions, planted)


def _pick(
    rng: np.random.Generator, route: np.ndarray, rows: np.ndarray, choices: np.ndarray
) -> None:
    route[rows] = rng.choice(choices, size=int(rows.sum()))


def _region_of(airport: str) -> str:
    return next(region for region, airports in REGIONS.items() if airport in airports)


def _routes(rng: np.random.Generator) -> pl.DataFrame:
    pairs = [(origin, to) for origin, destinations in NETWORK.items() for to in destinations]
    regions = [_region_of(to) for _, to in pairs]
    fares = [round(_BASE_FARE[r] * rng.uniform(0.8, 1.3)) for r in regions]
    return pl.DataFrame({
        "ITEM_ID": [f"{o}-{to}" for o, to in pairs],
        "NAME": [f"{CITIES[o]} to {CITIES[to]}" for o, to in pairs],
        "ORIGIN": [o for o, _ in pairs], "DESTINATION": [to for _, to in pairs],
        "REGION": regions, "PRICE": fares,
    })  # fmt: skip


def _customers(rng: np.random.Generator, ids: list[str], homes: list[str]) -> pl.DataFrame:
    first = rng.choice(_FIRST, size=len(ids))
    last = rng.choice(_LAST, size=len(ids))
    return pl.DataFrame({
        "USER_ID": ids,
        "NAME": [f"{f} {s}" for f, s in zip(first, last, strict=True)],
        "EMAIL": [f"{f}.{s}.{i[1:]}@example.com".lower()
                  for f, s, i in zip(first, last, ids, strict=True)],
        "HOME_AIRPORT": homes,
    })  # fmt: skip
