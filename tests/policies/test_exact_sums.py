"""One classifier of column types for both exact-sum planners (``policies.exact_sums.kind_of_type``):
every numeric type, in DuckDB's spelling and in Arrow's, is classed by what DuckDB's SUM does with it,
with DuckDB itself as the oracle."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
import sqlglot

from policies.exact_sums import kind, kind_of_type


def _duckdb_numeric_names() -> list[str]:
    con = duckdb.connect()
    try:
        rows = con.sql(
            "SELECT DISTINCT type_name FROM duckdb_types() WHERE type_category IN ('NUMERIC', 'BOOLEAN')"
        ).fetchall()
    finally:
        con.close()
    return sorted(str(name) for (name,) in rows)


DUCKDB_NUMERIC = _duckdb_numeric_names()
# Every numeric Arrow type; DuckDB reads all but two of them (see the last test).
ARROW_NUMERIC = [
    *(pa.int8(), pa.int16(), pa.int32(), pa.int64()),
    *(pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()),
    *(pa.float32(), pa.float64(), pa.bool_()),
    *(pa.decimal32(5, 2), pa.decimal64(12, 2), pa.decimal128(10, 2), pa.decimal128(38, 0)),
]
ARROW_UNREAD = [pa.float16(), pa.decimal256(40, 2)]


def _two_values(arrow: pa.DataType) -> pa.Array:
    if pa.types.is_boolean(arrow):
        return pa.array([True, False])
    if pa.types.is_decimal(arrow):
        return pa.array([Decimal(1), Decimal(2)], arrow)
    return pa.array([1, 2]).cast(arrow)


def _sum_kind(con: duckdb.DuckDBPyConnection, expression: str) -> str:
    """What DuckDB's SUM adds: DOUBLEs ("float") or integers and decimals exactly ("exact")."""
    (sum_type,) = con.sql(f"SELECT typeof(SUM({expression})) FROM t").fetchall()[0]
    assert sum_type == "DOUBLE" or sum_type in ("HUGEINT", "BIGINT") or sum_type.startswith("DECIMAL")
    return "float" if sum_type == "DOUBLE" else "exact"


def test_the_duckdb_type_list_holds_every_numeric_kind() -> None:
    # The oracle below walks duckdb_types(): it must not be empty or miss the types that matter.
    assert {"double", "float", "ubigint", "uinteger", "utinyint", "uhugeint", "decimal", "boolean"} <= set(
        DUCKDB_NUMERIC
    )


@pytest.mark.parametrize("name", DUCKDB_NUMERIC)
def test_every_duckdb_numeric_type_and_alias_is_classed_by_what_its_sum_adds(name: str) -> None:
    con = duckdb.connect()
    try:
        con.execute(f"CREATE TABLE t AS SELECT CAST(1 AS {name}) AS c")
        (canonical,) = con.sql("SELECT typeof(c) FROM t").fetchall()[0]
        expected = _sum_kind(con, "c")
    finally:
        con.close()
    assert kind_of_type(name) == expected
    assert kind_of_type(name.upper()) == expected
    assert kind_of_type(canonical) == expected  # DECIMAL(18,3) as DuckDB reports it


@pytest.mark.parametrize("arrow", ARROW_NUMERIC, ids=str)
def test_every_arrow_numeric_type_is_classed_as_duckdb_sums_the_column_it_reads(arrow: pa.DataType) -> None:
    t = pa.table({"c": _two_values(arrow)})
    con = duckdb.connect()
    try:
        con.register("t", t)
        (read_as,) = con.sql("SELECT typeof(c) FROM t").fetchall()[0]
        expected = _sum_kind(con, "c")
    finally:
        con.close()
    # str(arrow) is how the thread planner names an Arrow column's type; the split planner reads the
    # declared DuckDB type: both must give the same kind.
    assert kind_of_type(str(arrow)) == expected
    assert kind_of_type(read_as) == expected


def _register_and_sum(con: duckdb.DuckDBPyConnection, t: pa.Table) -> None:
    con.register("t", t)
    con.sql("SELECT SUM(c) FROM t").fetchall()


@pytest.mark.parametrize("arrow", ARROW_UNREAD, ids=str)
def test_the_arrow_types_duckdb_cannot_read_are_never_summed_as_exact_floats(arrow: pa.DataType) -> None:
    t = pa.table({"c": _two_values(arrow)})
    con = duckdb.connect()
    try:
        with pytest.raises(duckdb.NotImplementedException):
            _register_and_sum(con, t)
    finally:
        con.close()
    assert kind_of_type(str(arrow)) != "float"  # no limbs planned over a column the query cannot read


@pytest.mark.parametrize("name", [n for n in DUCKDB_NUMERIC if n.lower() not in ("oid", "dec", "logical")])
def test_a_cast_is_classed_by_the_same_table(name: str) -> None:
    node = sqlglot.parse_one(f"CAST(c AS {name})", dialect="duckdb")
    found = kind(node, {})
    assert found == kind_of_type(name), name


@pytest.mark.parametrize("name", ["VARCHAR", "DATE", "TIMESTAMP", "INTERVAL", "DOUBLE[]", "STRUCT(a DOUBLE)"])
def test_a_type_that_is_not_a_number_is_other(name: str) -> None:
    assert kind_of_type(name) == "other"
