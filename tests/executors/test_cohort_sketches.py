"""The sandbox's sketching step: what leaves the sandbox, and the same sketch however it is computed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from executors.cohort_sketches import sketch_cohorts
from policies.cohorts import CohortSketch, SketchRequest, element_key, elements, sketch_of

REQUEST = SketchRequest(secret=bytes(range(32)), power_sums=11)
KEYED = SketchRequest(secret=bytes(range(32)), power_sums=16, least=15)

rows = st.lists(
    # ARRAY_AGG(DISTINCT …): no unit twice in a list, at most one NULL.
    st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(0, 2**40)), max_size=60, unique=True)),
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(rows, st.integers(1, 4))
def test_every_row_gets_the_sketch_of_its_own_units_whatever_the_threads(
    lists: list[list[int | None] | None], threads: int
) -> None:
    table = pa.table({"n": list(range(len(lists))), "_sbx_cohort": pa.array(lists, pa.list_(pa.int64()))})
    out = sketch_cohorts(table, REQUEST, threads=threads)
    assert out.column_names == ["n", "_sbx_sketch"]
    key = element_key(REQUEST.secret)
    for listed, blob in zip(lists, out.column("_sbx_sketch").to_pylist(), strict=True):
        units = sorted({u for u in listed or [] if u is not None})
        if not units:
            assert blob is None
        else:
            assert CohortSketch.from_bytes(blob) == sketch_of(np.array(units), key, REQUEST.power_sums)


@settings(max_examples=80, deadline=None)
@given(rows, st.integers(1, 4))
def test_the_least_elements_are_the_units_smallest_whatever_the_threads(
    lists: list[list[int | None] | None], threads: int
) -> None:
    """Format 2: the sketch also holds the row's 15 smallest keyed elements, ascending, exactly."""
    table = pa.table({"_sbx_cohort": pa.array(lists, pa.list_(pa.int64()))})
    out = sketch_cohorts(table, KEYED, threads=threads)
    key = element_key(KEYED.secret)
    for listed, blob in zip(lists, out.column("_sbx_sketch").to_pylist(), strict=True):
        units = sorted({u for u in listed or [] if u is not None})
        if units:
            sketch = CohortSketch.from_bytes(blob)
            assert sketch == sketch_of(np.array(units), key, 16, 15)
            assert list(sketch.least) == sorted(elements(np.array(units), key).tolist())[:15]


def test_text_units_and_a_column_of_nulls() -> None:
    table = pa.table(
        {
            "_sbx_cohort": pa.array([["P1", "P2"], None], pa.list_(pa.string())),
            "_sbx_cohort_1": pa.nulls(2),
        }
    )
    out = sketch_cohorts(table, REQUEST, threads=2)
    assert out.column_names == ["_sbx_sketch", "_sbx_sketch_1"]
    first = CohortSketch.from_bytes(out.column("_sbx_sketch")[0].as_py())
    assert first.units == 2
    assert out.column("_sbx_sketch_1").null_count == 2


def test_no_unit_identifier_survives_the_step() -> None:
    """What leaves the sandbox holds no unit value: neither the ids nor their lists."""
    ids = [10_000_001 + i for i in range(50)]
    out = sketch_cohorts(pa.table({"_sbx_cohort": [ids]}), REQUEST)
    blob = out.column("_sbx_sketch")[0].as_py()
    assert all(i.to_bytes(4, "big") not in blob and i.to_bytes(8, "little") not in blob for i in ids)
