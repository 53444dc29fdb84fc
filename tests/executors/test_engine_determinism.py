"""Replay reproduces a release bit for bit: the same query over the same tables gives the same bytes.

A SUM or AVG over DOUBLE that the engine splits across threads combines its partial sums in whichever
order the threads finish; floating-point addition is not associative, so the last bits would change
from run to run and an honest replay would report a release that differs.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executors import engine
from executors.base import Limits
from executors.engine import run_query
from executors.exact_sums import Parallel, plan_threads
from policies.distributed.split import SplitQuery, split_query

RUNS = 25


@pytest.fixture(autouse=True)
def _threads_for_any_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tables here are small enough to run on one thread anyway: plan every query as a large one."""
    monkeypatch.setattr(engine, "PARALLEL_MIN_ROWS", 0)


FLOAT_AGGREGATES = """\
SELECT grp, SUM(x) AS total, AVG(x) AS mean, SUM(x * y) AS weighted, STDDEV_SAMP(y) AS spread
FROM t
GROUP BY grp
ORDER BY grp"""


def _many_batches(rows: int, *, batches: int) -> pa.Table:
    """A table in many record batches with values of very different magnitudes, as a job's parts are."""
    rng = np.random.default_rng(19)
    grp = rng.integers(0, 3, rows)
    x = rng.random(rows) * 10.0 ** rng.integers(-3, 9, rows)
    y = rng.normal(size=rows)
    table = pa.table({"grp": grp, "x": x, "y": y})
    return pa.Table.from_batches(table.to_batches(max_chunksize=rows // batches))


def _bits(table: pa.Table) -> list[tuple[object, ...]]:
    """Every value exactly: floats by their hex form, so a change in the last bit shows."""
    return [tuple(v.hex() if isinstance(v, float) else v for v in row.values()) for row in table.to_pylist()]


def test_a_float_aggregate_gives_the_same_bits_every_run_whatever_the_jobs_threads() -> None:
    table = _many_batches(400_000, batches=64)
    limits = Limits(memory_mb=512, threads=4)
    first = _bits(run_query(FLOAT_AGGREGATES, {"t": table}, keyed_hash_key=None, limits=limits))
    for _ in range(RUNS - 1):
        again = _bits(run_query(FLOAT_AGGREGATES, {"t": table}, keyed_hash_key=None, limits=limits))
        assert again == first


SUMS = """\
SELECT grp, SUM(x) AS total, AVG(x) AS mean, SUM(x * y) AS weighted, COUNT(*) AS n
FROM t
GROUP BY grp"""


def _plain(sql: str, table: pa.Table, *, threads: int) -> list[tuple[object, ...]]:
    """``sql`` on a bare DuckDB connection with ``threads`` threads (no rewrite), rows sorted."""
    con = duckdb.connect(":memory:", config={"threads": threads})
    try:
        con.register("t", table)
        return sorted(_bits(con.sql(sql).to_arrow_table()), key=repr)
    finally:
        con.close()


def _ours(sql: str, table: pa.Table, *, threads: int) -> list[tuple[object, ...]]:
    limits = Limits(memory_mb=512, threads=threads)
    return sorted(_bits(run_query(sql, {"t": table}, keyed_hash_key=None, limits=limits)), key=repr)


def test_plain_duckdb_on_several_threads_sums_floats_differently_from_run_to_run() -> None:
    # The hazard the engine guards against: if DuckDB ever combined float partials in a fixed order,
    # this fails and the exact-sum rewrite could go.
    table = _many_batches(400_000, batches=64)
    seen = {repr(_plain(SUMS, table, threads=4)) for _ in range(RUNS)}
    assert len(seen) > 1


def test_a_float_sum_and_average_give_the_same_bits_on_any_number_of_threads() -> None:
    table = _many_batches(400_000, batches=64)
    assert isinstance(plan_threads(SUMS, {"t": table.schema}), Parallel)  # the query runs on threads
    first = _ours(SUMS, table, threads=1)
    for threads in (2, 4, 8):
        for _ in range(RUNS // 5):
            assert _ours(SUMS, table, threads=threads) == first


def test_an_exact_sum_is_within_two_units_in_the_last_place_of_the_true_total() -> None:
    table = _many_batches(400_000, batches=64)
    grp = table.column("grp").to_numpy()
    x = table.column("x").to_numpy()
    ours = {
        row["grp"]: row["total"]
        for row in run_query(
            SUMS, {"t": table}, keyed_hash_key=None, limits=Limits(memory_mb=512, threads=4)
        ).to_pylist()
    }
    for g, total in ours.items():
        true = math.fsum(x[grp == g])
        assert abs(total - true) <= 2 * math.ulp(true)


@pytest.mark.parametrize("odd", [1e-300, float("nan"), float("inf"), 1e40])
def test_a_value_outside_the_exact_range_runs_the_query_as_written_on_one_thread(odd: float) -> None:
    table = _many_batches(200_000, batches=32)
    x = table.column("x").to_numpy().copy()
    x[12_345] = odd
    table = table.set_column(table.schema.get_field_index("x"), "x", pa.array(x))
    expected = _plain(SUMS, table, threads=1)
    for threads in (1, 4):
        got = _ours(SUMS, table, threads=threads)
        assert repr(got) == repr(expected)  # repr: NaN compares unequal to itself


def test_a_capped_result_keeps_the_same_rows_on_any_number_of_threads() -> None:
    table = _many_batches(200_000, batches=32)
    capped = "SELECT CAST(x * 1000 AS BIGINT) % 997 AS k, COUNT(*) AS n FROM t GROUP BY 1 LIMIT 101"
    first = _ours(capped, table, threads=1)
    assert len(first) == 101
    for _ in range(5):
        assert _ours(capped, table, threads=4) == first


def test_split_parts_merge_to_the_same_bits_on_any_number_of_threads() -> None:
    # The distributed path: a partial query per unit-partitioned part, then the merge over the partials.
    table = _many_batches(400_000, batches=64).append_column("u", pa.array(np.arange(400_000) % 997))
    plan = split_query("SELECT grp, SUM(x) AS total, AVG(x) AS mean FROM t GROUP BY grp", units={"t": "u"})
    assert isinstance(plan, SplitQuery)
    parts = [table.filter(pc.equal(pc.bit_wise_and(table.column("u"), 3), i)) for i in range(4)]

    def merged(threads: int) -> list[tuple[object, ...]]:
        limits = Limits(memory_mb=512, threads=threads)
        partials = [run_query(plan.partial_sql, {"t": p}, keyed_hash_key=None, limits=limits) for p in parts]
        merged = run_query(
            plan.final_sql,
            {plan.partials_table: pa.concat_tables(partials)},
            keyed_hash_key=None,
            limits=limits,
        )
        return sorted(_bits(merged), key=repr)

    first = merged(1)
    for _ in range(3):
        assert merged(4) == first


def test_a_small_input_runs_as_written_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    table = _many_batches(200_000, batches=32)
    monkeypatch.setattr(engine, "PARALLEL_MIN_ROWS", table.num_rows + 1)
    expected = _plain(SUMS, table, threads=1)
    for threads in (1, 4):
        assert _ours(SUMS, table, threads=threads) == expected


def _two_limbs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_ScaleOf", lambda tables: lambda column: None)


@pytest.mark.parametrize(
    ("tiny", "magnify", "scale"), [(None, 1.0, 87), (None, 2.0**30, 67), (2.0**-60, 1.0, None)]
)
def test_one_limb_gives_the_same_bits_as_two_limbs(
    monkeypatch: pytest.MonkeyPatch, tiny: float | None, magnify: float, scale: int | None
) -> None:
    # Amounts in cents: one limb holds them all, at the largest scale or (magnified) a smaller one, whose
    # fraction is shifted into the low limb's place. ``tiny`` has bits far below the limb's unit: the
    # statistics then choose two limbs.
    rng = np.random.default_rng(5)
    x = np.round(rng.gamma(2.0, 80.0, 200_000), 2) * np.where(rng.random(200_000) < 0.3, -1, 1) * magnify
    if tiny is not None:
        x[777] = tiny
    table = pa.table({"grp": rng.integers(0, 3, 200_000), "x": x, "y": rng.normal(size=200_000)})
    table = pa.Table.from_batches(table.to_batches(max_chunksize=200_000 // 32))
    assert engine._ScaleOf({"t": table})("x") == scale
    one = _ours(SUMS, table, threads=4)
    _two_limbs_only(monkeypatch)
    assert _ours(SUMS, table, threads=4) == one


def test_the_one_limb_scale_reads_every_chunk_and_refuses_a_nan() -> None:
    chunks = [pa.array([1.5, None, -2.25]), pa.array([1e6, 0.0])]
    assert engine._ScaleOf({"t": pa.table({"x": pa.chunked_array(chunks)})})("x") == 87  # the most
    wide = pa.chunked_array([*chunks, pa.array([2.0**60])])
    # |x| < 2**61 over 6 rows (3 bits) leaves 2**(126 - 3 - 61) = 2**62 for the fraction, and 1.5's last
    # bit (2**-52) is whole there.
    assert engine._ScaleOf({"t": pa.table({"x": wide})})("x") == 62
    with_nan = pa.chunked_array([*chunks, pa.array([math.nan])])
    assert engine._ScaleOf({"t": pa.table({"x": with_nan})})("x") is None


_MAGNITUDE_VALUES = st.lists(
    st.one_of(
        st.just(0.0),
        st.just(-0.0),
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        st.sampled_from([math.nan, math.inf, -math.inf, 5e-324, -5e-324]),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(_MAGNITUDE_VALUES, min_size=1, max_size=4), block=st.integers(1, 9))
def test_the_magnitudes_read_block_by_block_are_those_of_every_value(
    chunks: list[list[float]], block: int
) -> None:
    values = [v for chunk in chunks for v in chunk]
    if any(math.isnan(v) for v in values):
        expected = (math.inf, 0.0)  # no scale: two limbs
    else:
        nonzero = [abs(v) for v in values if v != 0]
        expected = (max((abs(v) for v in values), default=0.0), min(nonzero, default=math.inf))
    column = pa.chunked_array([pa.array(chunk, pa.float64()) for chunk in chunks])
    original = engine._BLOCK
    engine._BLOCK = block  # blocks of a few values: every boundary and every sign mix is crossed
    try:
        assert engine._magnitudes(column) == expected
        assert engine._magnitudes(column.slice(1)) == engine._magnitudes(
            pa.chunked_array([column.slice(1).combine_chunks()])
        )
    finally:
        engine._BLOCK = original


def test_a_column_summed_and_averaged_is_read_once_per_query(monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[int] = []
    magnitudes = engine._magnitudes

    def counted(column: pa.ChunkedArray) -> tuple[float, float]:
        read.append(len(column))
        return magnitudes(column)

    monkeypatch.setattr(engine, "_magnitudes", counted)
    table = pa.table({"g": pa.array([1, 1, 2], pa.int64()), "x": pa.array([0.5, 1.25, -3.0])})
    plan = plan_threads(
        "SELECT g, SUM(x) AS s, AVG(x) AS a, SUM(x) FILTER (WHERE x > 0) AS p FROM t GROUP BY g",
        {"t": table.schema},
        scale_of=engine._ScaleOf({"t": table}),
    )
    assert isinstance(plan, Parallel)
    assert plan.one_limb
    assert read == [3]


def test_a_join_that_overflows_one_limb_sums_in_two(monkeypatch: pytest.MonkeyPatch) -> None:
    # The one limb's scale allows for as many rows as the tables hold; a join makes more.
    left = pa.table(
        {"k": pa.array([1] * 1_500, pa.int64()), "x": pa.array([2.0**60 + 2**9 * i for i in range(1_500)])}
    )
    right = pa.table({"k": pa.array([1] * 1_500, pa.int64()), "n": pa.array(range(1_500), pa.int64())})
    sql = "SELECT SUM(l.x) AS total FROM l JOIN r ON l.k = r.k"
    limits = Limits(memory_mb=512, threads=2)
    one = run_query(sql, {"l": left, "r": right}, keyed_hash_key=None, limits=limits)
    _two_limbs_only(monkeypatch)
    two = run_query(sql, {"l": left, "r": right}, keyed_hash_key=None, limits=limits)
    assert _bits(one) == _bits(two)
    true = math.fsum(left.column("x").to_pylist() * 1_500)
    assert abs(one.column("total")[0].as_py() - true) <= 2 * math.ulp(true)


@pytest.mark.parametrize("values", [[-1.377407140235183e-07], [0.25, -0.2500001, 1e-9], [-3.0, 2.9999999999]])
def test_a_total_between_minus_one_and_zero_keeps_every_digit(values: list[float]) -> None:
    # The limbs' normalised pair is floor(V) = -1 and a fraction near 1: added as they are, the two
    # terms cancel and keep only the digits of the difference from -1.
    table = pa.table({"grp": pa.array([0] * len(values), pa.int64()), "x": pa.array(values)})
    (row,) = run_query(
        "SELECT SUM(x) AS total FROM t",
        {"t": table},
        keyed_hash_key=None,
        limits=Limits(memory_mb=256, threads=2),
    ).to_pylist()
    true = math.fsum(values)
    assert abs(row["total"] - true) <= 2 * math.ulp(true)


def test_unnamed_float_sums_keep_the_names_the_query_as_written_gives_them_whatever_the_input_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Large inputs run the exact form; its unnamed columns must not be named after the rewritten text.
    table = _many_batches(20_000, batches=4)
    sql = "SELECT grp, SUM(x), AVG(x) FILTER (WHERE y > 0) FROM t GROUP BY grp ORDER BY grp"
    limits = Limits(memory_mb=512, threads=2)
    assert isinstance(plan_threads(sql, {"t": table.schema}), Parallel)
    exact = run_query(sql, {"t": table}, keyed_hash_key=None, limits=limits)
    monkeypatch.setattr(engine, "PARALLEL_MIN_ROWS", table.num_rows + 1)
    as_written = run_query(sql, {"t": table}, keyed_hash_key=None, limits=limits)
    assert exact.column_names == as_written.column_names
