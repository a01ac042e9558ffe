"""The marketing scenario's travel data: seeded, and its planted tastes are there to find."""

from __future__ import annotations

import polars as pl

from tastebud.demo import travel


def test_the_same_seed_gives_the_same_data() -> None:
    first, again, other = (travel.generate(n_customers=300, seed=s) for s in (1, 1, 2))
    assert first.interactions.equals(again.interactions)
    assert first.customers.equals(again.customers)
    assert not first.interactions.equals(other.interactions)


def test_every_home_airport_flies_to_every_region() -> None:
    routes = travel.generate(n_customers=10).routes
    assert routes.height == 30
    assert (routes["ITEM_ID"] == routes["ORIGIN"] + "-" + routes["DESTINATION"]).all()
    pairs = routes.select("ORIGIN", "REGION").unique().height
    assert pairs == len(travel.NETWORK) * len(travel.REGIONS)


def test_searches_and_bookings_follow_the_planted_tastes() -> None:
    data = travel.generate(n_customers=1000, seed=3)
    routes = data.routes.select("ITEM_ID", "ORIGIN", "REGION")
    planted = pl.DataFrame(
        {"USER_ID": list(data.favourite_region), "FAVOURITE": list(data.favourite_region.values())}
    )
    taste = (pl.col("ORIGIN") == pl.col("HOME_AIRPORT")) & (pl.col("REGION") == pl.col("FAVOURITE"))
    rows = (
        data.interactions.join(routes, on="ITEM_ID")
        .join(data.customers.select("USER_ID", "HOME_AIRPORT"), on="USER_ID")
        .join(planted, on="USER_ID")
        .with_columns(taste=taste)
    )
    searches = rows.filter(pl.col("EVENT_TYPE") == "search")
    assert 0.75 < searches["taste"].mean() < 0.9
    bookings = rows.filter(pl.col("EVENT_TYPE") == "book")
    assert bookings["taste"].mean() > 0.9
    # a route's planted segment is a small share of all customers
    everyone = data.customers["USER_ID"].to_list()
    assert data.planted_share(everyone, "MAN-BOS") < 0.15
