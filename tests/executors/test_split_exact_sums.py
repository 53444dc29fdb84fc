"""A split job's float sums merge to the same bits as one process's exact sums, on any number of parts.

The parts' partial query and the merge run through the engine as the scale-out backend runs them (a
part on one thread, the merge over the concatenated partials); the reference is the engine's exact sum
of the whole table in one process, as it runs it for a large input (one limb where the data's range
allows, two otherwise), here forced on for small hypothesis-drawn tables.
"""

from __future__ import annotations

import math
import struct

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executors import engine
from executors.base import Limits
from executors.engine import run_query
from policies.distributed import SplitQuery, split_query

SQL = (
    "SELECT g, SUM(x) AS total, AVG(x) AS mean, SUM(x) FILTER (WHERE x > 0) AS positive, "
    "COUNT(*) AS n FROM t GROUP BY g"
)
TYPES = {"t": {"u": "BIGINT", "g": "VARCHAR", "x": "DOUBLE"}}
LIMITS = Limits(memory_mb=256, threads=2)

# Values inside the exact range (zero, or 2**-35 <= |x| < 2**87), spread over many magnitudes so that
# plain float addition would depend on the order.
_IN_RANGE = st.one_of(
    st.just(0.0),
    st.floats(min_value=2.0**-35, max_value=2.0**60, allow_nan=False, allow_infinity=False),
    st.floats(min_value=-(2.0**60), max_value=-(2.0**-35), allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**6), max_value=10**6).map(lambda i: i / 100),
)


def _table(values: list[float], groups: list[int]) -> pa.Table:
    return pa.table(
        {
            "u": pa.array(range(len(values)), pa.int64()),
            "g": pa.array([f"g{k}" for k in groups]),
            "x": pa.array(values, pa.float64()),
        }
    )


def _bits(table: pa.Table) -> list[tuple[object, ...]]:
    """Rows by group, floats as their IEEE bits (NaN payloads and signed zeros included)."""

    def cell(v: object) -> object:
        return struct.pack("<d", v).hex() if isinstance(v, float) else v

    return sorted((tuple(cell(v) for v in row.values()) for row in table.to_pylist()), key=repr)


def _merged(table: pa.Table, owner: list[int], n_parts: int) -> pa.Table:
    plan = split_query(SQL, units={"t": "u"}, column_types=TYPES)
    assert isinstance(plan, SplitQuery), plan
    one = Limits(memory_mb=256, threads=1)  # a part task's engine thread
    partials = [
        run_query(
            plan.partial_sql,
            {"t": table.filter(pa.array([o == i for o in owner]))},
            keyed_hash_key=None,
            limits=one,
        )
        for i in range(n_parts)
    ]
    merged = pa.concat_tables(partials)
    return run_query(plan.final_sql, {plan.partials_table: merged}, keyed_hash_key=None, limits=LIMITS)


def _one_process(table: pa.Table) -> pa.Table:
    return run_query(SQL, {"t": table}, keyed_hash_key=None, limits=LIMITS)


@pytest.fixture
def exact_for_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine sums exactly from a million input rows; the property holds for any size.
    monkeypatch.setattr(engine, "PARALLEL_MIN_ROWS", 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_split_float_sums_merge_to_the_one_process_bits_on_any_number_of_parts(
    data: st.DataObject, exact_for_any_size: None
) -> None:
    values = data.draw(st.lists(_IN_RANGE, min_size=1, max_size=120), label="values")
    groups = data.draw(st.lists(st.integers(0, 3), min_size=len(values), max_size=len(values)), label="g")
    n_parts = data.draw(st.integers(1, 8), label="parts")
    owner = data.draw(
        st.lists(st.integers(0, n_parts - 1), min_size=len(values), max_size=len(values)), label="owner"
    )
    table = _table(values, groups)
    expected = _one_process(table)
    assert _bits(_merged(table, owner, n_parts)) == _bits(expected)
    # And exact: within 2 units in the last place of the correctly rounded sum.
    for row in expected.to_pylist():
        exact = math.fsum(v for v, k in zip(values, groups, strict=True) if f"g{k}" == row["g"])
        assert abs(row["total"] - exact) <= 2 * math.ulp(exact)


def test_the_same_data_cut_into_different_parts_gives_the_same_bits(exact_for_any_size: None) -> None:
    values = [0.1 * (i % 97) - 3.3 + 1e9 * (i % 5 == 0) for i in range(3_000)]
    table = _table(values, [i % 3 for i in range(len(values))])
    results = {
        repr(_bits(_merged(table, [(i * 7919) % n for i in range(len(values))], n))) for n in (1, 2, 3, 5, 8)
    }
    assert results == {repr(_bits(_one_process(table)))}


@pytest.mark.parametrize("odd", [math.nan, math.inf, 1e-300, 1e40])
def test_a_value_outside_the_exact_range_merges_the_parts_plain_sums(odd: float) -> None:
    # One process then sums as written on one thread; the split neither fails nor hides the value.
    values = [1.5, 2.25, odd, -4.0]
    table = _table(values, [0, 0, 0, 0])
    merged = _merged(table, [0, 1, 1, 0], 2).to_pylist()[0]
    plain = (1.5 + -4.0) + (2.25 + odd)
    assert repr(merged["total"]) == repr(plain)
    assert repr(merged["mean"]) == repr(plain / 4)


def test_without_column_types_float_sums_merge_as_plain_doubles() -> None:
    plan = split_query("SELECT SUM(x) AS s FROM t", units={"t": "u"})
    assert isinstance(plan, SplitQuery)
    assert "INT128" not in plan.partial_sql
    typed = split_query("SELECT SUM(x) AS s FROM t", units={"t": "u"}, column_types=TYPES)
    assert isinstance(typed, SplitQuery)
    assert "INT128" in typed.partial_sql


@pytest.mark.parametrize(
    ("arrow", "declared"),
    [
        (pa.uint8(), "UTINYINT"),
        (pa.uint16(), "USMALLINT"),
        (pa.uint32(), "UINTEGER"),
        (pa.uint64(), "UBIGINT"),
    ],
)
def test_a_float_times_an_unsigned_integer_merges_to_the_one_process_bits(
    arrow: pa.DataType, declared: str, exact_for_any_size: None
) -> None:
    # Both planners class the unsigned column alike (an exact integer): the product is a float sum,
    # exact in one process (from the Arrow schema) and through the split (from the declared types).
    n = 3_000
    values = [0.1 * (i % 97) - 3.3 + 1e9 * (i % 5 == 0) for i in range(n)]
    table = _table(values, [i % 3 for i in range(n)]).append_column(
        "w", pa.array([i % 7 for i in range(n)], arrow)
    )
    sql = "SELECT g, SUM(x * w) AS total, AVG(w * x) AS mean FROM t GROUP BY g"
    types = {"t": {**TYPES["t"], "w": declared}}
    plan = split_query(sql, units={"t": "u"}, column_types=types)
    assert isinstance(plan, SplitQuery), plan
    assert "INT128" in plan.partial_sql
    owner = [(i * 7919) % 4 for i in range(n)]
    partials = [
        run_query(
            plan.partial_sql,
            {"t": table.filter(pa.array([o == i for o in owner]))},
            keyed_hash_key=None,
            limits=Limits(memory_mb=256, threads=1),
        )
        for i in range(4)
    ]
    merged = run_query(
        plan.final_sql, {plan.partials_table: pa.concat_tables(partials)}, keyed_hash_key=None, limits=LIMITS
    )
    one_process = run_query(sql, {"t": table}, keyed_hash_key=None, limits=LIMITS)
    assert _bits(merged) == _bits(one_process)
