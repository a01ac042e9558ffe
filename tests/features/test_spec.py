"""Declarations: the format, and errors that name the feature and the key."""

from __future__ import annotations

import json

import pytest

from tastebud.errors import InvalidInput
from tastebud.features import parse_text
from tests.features.conftest import LIVE


def test_a_live_show_declaration_parses_with_its_columns() -> None:
    features = parse_text(LIVE + "  - {name: device, kind: request, source: context, "
                          "field: DEVICE, encoding: onehot, values: [ios, web]}\n")  # fmt: skip
    assert features.columns[-2:] == ["device.ios", "device.web"]
    assert features.by_name["views_5m"].window == 300
    assert features.by_name["host_seen"].window == 30 * 86_400  # last_seen's default
    assert parse_text(json.dumps(features.to_json())).columns == features.columns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("features: [{name: a, kind: countr}]", "feature 'a'.kind: expected one of counter"),
        (
            "features: [{name: a, kind: counter, aggregation: count, window: 5x}]",
            "feature 'a'.window: expected a duration such as 5m",
        ),
        (
            "features: [{name: a, kind: counter, aggregation: count, window: 5m, windw: 1}]",
            "feature 'a'.windw: unknown key",
        ),
        (
            "features: [{name: a, kind: counter, aggregation: count, window: 5m},"
            " {name: a, kind: rate, numerator: [x], denominator: [y], window: 1h}]",
            "feature 'a'.name: declared twice",
        ),
        (
            "features: [{name: a, kind: counter, aggregation: median, window: 5m}]",
            "feature 'a'.aggregation: Input should be",
        ),
        (
            "features: [{name: a, kind: counter, entity: user_item_field, aggregation: count, "
            "window: 5m}]",
            "feature 'a'.field: give it exactly when entity is user_item_field",
        ),
        (
            "features: [{name: a, kind: batch, aggregation: rate, days: 3}]",
            "feature 'a'.numerator: give numerator and denominator",
        ),
        (
            "features: [{name: a, kind: request, source: context, field: DEVICE}]",
            "feature 'a'.values: list the context values",
        ),
        ("features: [{kind: counter, aggregation: count, window: 5m}]", "features[0].name"),
        ("features: []", "expected a non-empty list"),
        ("feature: [{name: a}]", "unknown key(s) feature"),
        ("features: [{name: a, kind: sessions, min_minutes: 10, window: 1h}", "not valid YAML"),
    ],
)
def test_bad_declarations_name_the_feature_and_the_key(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_text(text)
    assert message in caught.value.message
