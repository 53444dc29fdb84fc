"""Mock twins: deterministic per seed, inside the declared domains, never a copy of real rows."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from executors.mock_twins import MockColumn, MockDomain, MockSchemaError, MockTable, mock_table
from policies.catalog import ColumnSchema, TableSchema, ValueDomain

SCHEMA = MockTable(
    "citizens",
    (
        MockColumn("person_id", "VARCHAR"),
        MockColumn("district", "VARCHAR", MockDomain(categories=("north", "south", "east"))),
        MockColumn("age", "INTEGER", MockDomain(low=18, high=65)),
        MockColumn("income", "DOUBLE", MockDomain(low=1000.0, high=2000.0)),
        MockColumn("born", "DATE", MockDomain(low=dt.date(1950, 1, 1), high=dt.date(1960, 12, 31))),
        MockColumn("seen", "TIMESTAMP", MockDomain(low=dt.date(2024, 1, 1), high=dt.date(2024, 1, 31))),
        MockColumn("phone", "VARCHAR", MockDomain(pattern="+31-6-########")),
        MockColumn("code", "VARCHAR", MockDomain(pattern="A\\#XX")),
        MockColumn("active", "BOOLEAN"),
    ),
    unit="person_id",
)


def test_same_seed_same_twin_and_different_seed_different_twin() -> None:
    first, again, other = (
        mock_table(SCHEMA, 500, 42),
        mock_table(SCHEMA, 500, 42),
        mock_table(SCHEMA, 500, 43),
    )
    assert first.equals(again)
    assert not first.equals(other)


def test_values_respect_the_declared_domains() -> None:
    twin = mock_table(SCHEMA, 2000, 1).to_pydict()
    assert set(twin["district"]) == {"north", "south", "east"}
    assert min(twin["age"]) >= 18
    assert max(twin["age"]) <= 65
    assert all(1000.0 <= v <= 2000.0 for v in twin["income"])
    assert all(dt.date(1950, 1, 1) <= v <= dt.date(1960, 12, 31) for v in twin["born"])
    assert all(dt.datetime(2024, 1, 1) <= v < dt.datetime(2024, 2, 1) for v in twin["seen"])
    assert all(len(p) == 14 and p.startswith("+31-6-") and p[6:].isdigit() for p in twin["phone"])
    assert all(
        c[0].isupper() and c[1] == "#" and all(x in "0123456789abcdef" for x in c[2:]) for c in twin["code"]
    )
    assert set(twin["active"]) == {True, False}


def test_schema_types_and_column_order() -> None:
    twin = mock_table(SCHEMA, 10, 1)
    assert twin.column_names == [c.name for c in SCHEMA.columns]
    assert twin.schema.field("age").type == pa.int32()
    assert twin.schema.field("born").type == pa.date32()
    assert twin.schema.field("income").type == pa.float64()


def test_units_repeat_like_real_units() -> None:
    units = mock_table(SCHEMA, 900, 5).column("person_id").to_pylist()
    assert 1 < len(set(units)) < len(units)


def test_twin_never_equals_real_rows() -> None:
    real = pa.table(
        {
            "person_id": ["p-1", "p-2"],
            "district": ["north", "south"],
            "age": pa.array([30, 40], pa.int32()),
            "income": [1500.0, 1600.0],
            "born": pa.array([dt.date(1955, 5, 5)] * 2),
            "seen": pa.array([dt.datetime(2024, 1, 5)] * 2),
            "phone": ["+31-6-12345678", "+31-6-87654321"],
            "code": ["A#ff", "B#00"],
            "active": [True, False],
        }
    )
    twin = mock_table(SCHEMA, 5000, 9)
    real_rows = {tuple(r.values()) for r in real.to_pylist()}
    assert not real_rows & {tuple(r.values()) for r in twin.to_pylist()}
    assert not set(real.column("person_id").to_pylist()) & set(twin.column("person_id").to_pylist())


def test_adding_a_column_does_not_reshuffle_the_others() -> None:
    smaller = MockTable("t", SCHEMA.columns[:3], unit="person_id")
    assert mock_table(smaller, 50, 3).column("age").equals(mock_table(SCHEMA, 50, 3).column("age"))


def test_accepts_the_catalog_schema_of_policies() -> None:
    schema = TableSchema(
        name="citizens",
        unit="person_id",
        columns=(
            ColumnSchema(name="person_id", type="BIGINT"),
            ColumnSchema(name="sex", type="VARCHAR", domain=ValueDomain(categories=("f", "m"))),
            ColumnSchema(name="income", type="DOUBLE", domain=ValueDomain(low=0, high=10)),
        ),
    )
    twin = mock_table(schema, 100, 7).to_pydict()
    assert set(twin["sex"]) <= {"f", "m"}
    assert all(0 <= v <= 10 for v in twin["income"])
    assert all(isinstance(v, int) for v in twin["person_id"])


@pytest.mark.parametrize(
    "column",
    [
        MockColumn("x", "BLOB"),
        MockColumn("x", "INTEGER", MockDomain(low=5, high=1)),
        MockColumn("x", "DATE", MockDomain(low=dt.date(2020, 1, 2), high=dt.date(2020, 1, 1))),
        MockColumn("x", "INTEGER", MockDomain(categories=("not-a-number",))),
    ],
    ids=["unknown-type", "inverted-range", "inverted-dates", "bad-category"],
)
def test_invalid_domains_are_refused(column: MockColumn) -> None:
    with pytest.raises(MockSchemaError):
        mock_table(MockTable("t", (column,)), 10, 1)
