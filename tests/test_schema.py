"""Schemas: building, verdicts of the bulk (frame) and real-time (record) paths, inference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tastebud.errors import InvalidInput
from tastebud.schema import (
    MAX_EPOCH_SECONDS,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    DatasetSchema,
    infer_schema,
    parse_timestamp,
    validate_frame,
    validate_record,
)

ITEMS = DatasetSchema.build(
    "items",
    {
        "PRICE": "numerical",
        "RELEASED": "timestamp",
        "GENRES": "categorical",
        "DESCRIPTION": "textual",
    },
)
JAN_1_2024 = 1_704_067_200


def frame_verdict(
    schema: DatasetSchema, column: str, value: str | None
) -> tuple[object, str | None]:
    """(typed value, None) when ``value`` is accepted in an items file, else (None, reason)."""
    raw = pl.DataFrame(
        {"ITEM_ID": ["i1"], column: [value]}, schema={"ITEM_ID": pl.String, column: pl.String}
    )
    accepted, rejected = validate_frame(schema, raw)
    assert accepted.height + rejected.height == 1
    if accepted.height:
        return accepted[column][0], None
    assert rejected["row"].to_list() == [0]
    return None, rejected["reason"][0]


def record_verdict(schema: DatasetSchema, column: str, value: object) -> tuple[object, str | None]:
    try:
        return validate_record(schema, {column: value}, where="items[0]").get(column), None
    except InvalidInput as exc:
        return None, exc.message


# building schemas ---------------------------------------------------------------------------------
def test_build_adds_reserved_fields_and_matches_them_case_insensitively() -> None:
    schema = DatasetSchema.build("interactions", {"event_type": "string", "DEVICE": "categorical"})
    assert list(schema.types) == [
        "USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "EVENT_ID", "SESSION_ID",
        "RECOMMENDATION_ID", "IMPRESSION", "DEVICE",
    ]  # fmt: skip
    assert schema.extra_fields == {"DEVICE": "categorical"}
    assert DatasetSchema.default("users").types == {"USER_ID": "string"}
    assert DatasetSchema.default("items").types == {
        "ITEM_ID": "string",
        "CREATION_TIMESTAMP": "timestamp",
    }


def test_reserved_field_with_another_type_is_invalid() -> None:
    with pytest.raises(
        InvalidInput, match=r"interactions\.TIMESTAMP: reserved field has type 'timestamp'"
    ):
        DatasetSchema.build("interactions", {"timestamp": "numerical"})
    with pytest.raises(InvalidInput, match=r"items\.ITEM_ID"):
        DatasetSchema.build("items", {"ITEM_ID": "categorical"})


@pytest.mark.parametrize("name", ["1ABC", "has space", "dash-name", "x" * 65, ""])
def test_bad_field_names_are_invalid(name: str) -> None:
    with pytest.raises(InvalidInput, match="items schema"):
        DatasetSchema.build("items", {name: "categorical"})


def test_unknown_field_type_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="GENRES"):
        DatasetSchema.build("items", {"GENRES": "list"})


# bulk verdicts ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1.0),
        ("-2.5", -2.5),
        ("1e3", 1000.0),
        (" 4 ", 4.0),
        ("+.5", 0.5),
        ("", None),
        (None, None),
    ],
)
def test_numbers_accepted(value: str | None, expected: float | None) -> None:
    assert frame_verdict(ITEMS, "PRICE", value) == (expected, None)
    if value is not None:
        assert record_verdict(ITEMS, "PRICE", value) == (expected, None)


@pytest.mark.parametrize(
    "value", ["abc", "nan", "NaN", "inf", "-inf", "Infinity", "1,5", "1e400", "0x10", "1_000"]
)
def test_bad_numbers_rejected_by_both_paths(value: str) -> None:
    _, reason = frame_verdict(ITEMS, "PRICE", value)
    assert reason == f"items.PRICE: expected a number, got '{value}'"
    _, reason = record_verdict(ITEMS, "PRICE", value)
    assert reason is not None and reason.startswith("items[0].PRICE: expected")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, [1.0], {"a": 1}])
def test_bad_numbers_rejected_on_the_record_path(value: object) -> None:
    assert record_verdict(ITEMS, "PRICE", value)[1] is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1700000000", 1_700_000_000),
        ("1700000000.9", 1_700_000_000),  # fractions of a second are dropped
        ("0", 0),
        (str(MAX_EPOCH_SECONDS), MAX_EPOCH_SECONDS),
        ("2024-01-01", JAN_1_2024),
        ("2024-01-01T00:00:00", JAN_1_2024),
        ("2024-01-01 00:00:00", JAN_1_2024),
        ("2024-01-01T00:00:00Z", JAN_1_2024),
        ("2024-01-01T00:00:00z", JAN_1_2024),
        ("2024-01-01T01:30:00+01:30", JAN_1_2024),
        ("2023-12-31T19:00:00-05:00", JAN_1_2024),
        ("2024-01-01T00:00:00.750Z", JAN_1_2024),
        ("2024-01-01T00:00:00.123456", JAN_1_2024),
    ],
)
def test_timestamps_accepted(value: str, expected: int) -> None:
    assert frame_verdict(ITEMS, "RELEASED", value) == (expected, None)
    assert record_verdict(ITEMS, "RELEASED", value) == (expected, None)
    assert parse_timestamp(value, "x") == expected


@pytest.mark.parametrize(
    "value",
    [
        "1700000000000",  # milliseconds sent by mistake
        str(MAX_EPOCH_SECONDS + 1),
        "-1",
        "1969-12-31T23:59:59Z",
        "2100-01-01T00:00:01Z",
        "2024-13-01",
        "2024-02-30",
        "yesterday",
        "nan",
        "inf",
        "1e300",
    ],
)
def test_bad_timestamps_rejected_by_both_paths(value: str) -> None:
    _, reason = frame_verdict(ITEMS, "RELEASED", value)
    assert reason == f"items.RELEASED: expected epoch seconds or ISO-8601, got '{value}'"
    assert record_verdict(ITEMS, "RELEASED", value)[1] is not None
    with pytest.raises(InvalidInput, match=r"^where: "):
        parse_timestamp(value, "where")


@pytest.mark.parametrize(
    "value", [1_700_000_000_000, -1, float("nan"), float("inf"), True, None, [1]]
)
def test_parse_timestamp_rejects_bad_python_values(value: object) -> None:
    with pytest.raises(InvalidInput, match=r"^sentAt: "):
        parse_timestamp(value, "sentAt")


def test_parse_timestamp_accepts_numbers() -> None:
    assert parse_timestamp(1_700_000_000, "x") == 1_700_000_000
    assert parse_timestamp(1_700_000_000.75, "x") == 1_700_000_000


def test_required_values_missing_and_row_numbers() -> None:
    schema = DatasetSchema.default("interactions")
    raw = pl.DataFrame(
        {
            "USER_ID": ["u1", "", "u3", "u4", None],
            "ITEM_ID": ["i1", "i2", None, "i4", "i5"],
            "TIMESTAMP": ["1", "2", "3", " ", "5"],
        }
    )
    accepted, rejected = validate_frame(schema, raw, first_row=100)
    assert accepted.rows() == [("u1", "i1", 1)]
    assert accepted.schema == pl.Schema(
        {"USER_ID": pl.String, "ITEM_ID": pl.String, "TIMESTAMP": pl.Int64}
    )
    assert rejected.rows() == [
        (101, "interactions.USER_ID: required value is missing"),
        (102, "interactions.ITEM_ID: required value is missing"),
        (103, "interactions.TIMESTAMP: required value is missing"),
        (104, "interactions.USER_ID: required value is missing"),
    ]


def test_missing_required_column_is_invalid() -> None:
    raw = pl.DataFrame({"USER_ID": ["u1"], "ITEM_ID": ["i1"]})
    with pytest.raises(InvalidInput, match=r"required column.*TIMESTAMP"):
        validate_frame(DatasetSchema.default("interactions"), raw)


def test_unknown_column_is_invalid_and_named() -> None:
    raw = pl.DataFrame({"ITEM_ID": ["i1"], "COLOUR": ["red"]})
    with pytest.raises(InvalidInput, match=r"unknown field.*'COLOUR'"):
        validate_frame(ITEMS, raw)
    with pytest.raises(InvalidInput, match=r"items\[0\]\.COLOUR: unknown field"):
        validate_record(ITEMS, {"COLOUR": "red"}, where="items[0]")


def test_reserved_columns_are_renamed_to_canonical_names() -> None:
    raw = pl.DataFrame(
        {"user_id": ["u1"], "Item_Id": ["i1"], "timestamp": ["2024-01-01"], "event_value": ["2"]}
    )
    accepted, rejected = validate_frame(DatasetSchema.default("interactions"), raw)
    assert rejected.is_empty()
    assert accepted.rows(named=True) == [
        {"USER_ID": "u1", "ITEM_ID": "i1", "TIMESTAMP": JAN_1_2024, "EVENT_VALUE": 2.0}
    ]


def test_overlong_ids_and_text_are_rejected() -> None:
    schema = DatasetSchema.default("interactions")
    long_id, ok_id = "u" * (MAX_ID_LENGTH + 1), "u" * MAX_ID_LENGTH
    raw = pl.DataFrame(
        {"USER_ID": [ok_id, long_id], "ITEM_ID": ["i", "i"], "TIMESTAMP": ["1", "1"]}
    )
    accepted, rejected = validate_frame(schema, raw)
    assert accepted["USER_ID"].to_list() == [ok_id]
    assert rejected.rows() == [(1, f"interactions.USER_ID: longer than {MAX_ID_LENGTH} characters")]

    long_text = "w" * (MAX_TEXT_LENGTH + 1)
    assert frame_verdict(ITEMS, "DESCRIPTION", long_text)[1] == (
        f"items.DESCRIPTION: longer than {MAX_TEXT_LENGTH} characters"
    )
    assert frame_verdict(ITEMS, "DESCRIPTION", long_text[:-1]) == (long_text[:-1], None)
    assert record_verdict(ITEMS, "DESCRIPTION", long_text)[1] is not None
    assert record_verdict(ITEMS, "DESCRIPTION", long_text[:-1]) == (long_text[:-1], None)


def test_record_values_of_strings_and_lists() -> None:
    assert validate_record(
        ITEMS, {"GENRES": ["a", "b"], "PRICE": 3, "RELEASED": None}, where="x"
    ) == {
        "GENRES": "a|b",
        "PRICE": 3.0,
    }
    for bad in ({"GENRES": ["a", 1]}, {"GENRES": 5}, {"DESCRIPTION": ["a"]}):
        with pytest.raises(InvalidInput, match=r"x\.(GENRES|DESCRIPTION): expected"):
            validate_record(ITEMS, bad, where="x")


# inference ----------------------------------------------------------------------------------------
def test_infer_schema_from_planted_columns() -> None:
    raw = pl.DataFrame(
        {
            "item_id": ["i1", "i2", "i3", "i4"],
            "creation_timestamp": ["1", "2", "3", "4"],
            "PRICE": ["1.5", "2", "", "-3e2"],
            "ZIP": ["01234", "98765", "00042", "12345"],  # leading zeros: a code, not a number
            "RELEASED": ["2024-01-01", "2024-02-01T10:00:00Z", "2023-05-05 12:00:00", None],
            "GENRES": ["drama|comedy", "drama", "horror", "comedy"],
            "DESCRIPTION": [
                "a long description of the first item that goes on and on",
                "another long description, of the second item, long enough",
                "short one",
                "the fourth description is also rather long to read here",
            ],
            "COLOUR": ["red", "blue", "red", "green"],
            "EMPTY": [None, "", None, ""],
        }
    )
    schema = infer_schema("items", raw)
    assert schema.types == {
        "ITEM_ID": "string", "CREATION_TIMESTAMP": "timestamp", "PRICE": "numerical",
        "ZIP": "categorical", "RELEASED": "timestamp", "GENRES": "categorical",
        "DESCRIPTION": "textual", "COLOUR": "categorical", "EMPTY": "categorical",
    }  # fmt: skip
    accepted, rejected = validate_frame(schema, raw)  # the inferred schema accepts its own file
    assert rejected.is_empty() and accepted.height == 4


def test_infer_schema_keeps_reserved_types() -> None:
    raw = pl.DataFrame(
        {
            "USER_ID": ["1", "2"],
            "ITEM_ID": ["3", "4"],
            "TIMESTAMP": ["5", "6"],
            "event_value": ["1", "x"],
        }
    )
    schema = infer_schema("interactions", raw)
    assert schema == DatasetSchema.default("interactions")


# the two paths agree ------------------------------------------------------------------------------
OFFSETS = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)
DATETIMES = st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(2110, 1, 1), timezones=OFFSETS
)


@st.composite
def iso_strings(draw: st.DrawFn) -> str:
    """Timestamps written the ways exporters write them."""
    moment = draw(DATETIMES)
    style = draw(st.sampled_from(["T", " ", "date", "Z", "ms"]))
    if style == "date":
        return moment.date().isoformat()
    if style == "Z":
        return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    if style == "ms":
        return moment.isoformat(timespec="milliseconds")
    return moment.isoformat(sep=style, timespec=draw(st.sampled_from(["seconds", "microseconds"])))


NUMBER_TEXT = st.one_of(
    st.integers(-(10**13), 10**13).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(0, 5e9).map(lambda x: f"{x:.3f}"),
    st.text(alphabet="0123456789.eE+-_ xn", max_size=8),
)


def assert_same_verdict(column: str, value: str) -> None:
    typed, reason = frame_verdict(ITEMS, column, value)
    record_typed, record_reason = record_verdict(ITEMS, column, value)
    assert (reason is None) == (record_reason is None), (value, reason, record_reason)
    if reason is None and value.strip():
        assert typed == record_typed, value


@settings(max_examples=300, deadline=None)
@given(NUMBER_TEXT)
@example("1_000")
def test_numbers_same_verdict_on_both_paths(value: str) -> None:
    assert_same_verdict("PRICE", value)


@settings(max_examples=300, deadline=None)
@given(NUMBER_TEXT)
@example("nan")
@example("inf")
@example("1e300")
@example(f"{MAX_EPOCH_SECONDS}.5")
@example("1_000")
def test_epoch_timestamps_same_verdict_on_both_paths(value: str) -> None:
    assert_same_verdict("RELEASED", value)


@settings(max_examples=300, deadline=None)
@given(iso_strings())
@example("2024-01-01T10:30")  # no seconds
@example("2024-01-01 10:30:00+00:00")  # space and an offset
def test_iso_timestamps_same_verdict_on_both_paths(value: str) -> None:
    assert_same_verdict("RELEASED", value)
