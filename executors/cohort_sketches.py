"""Inside the sandbox: turn the hidden unit lists of a result into keyed cohort sketches.

``policies.passes.collect_cohorts`` makes the query return, per row, ``_sbx_cohort*`` lists of the
units behind it. Those are identifiers and must not leave the sandbox, so before the result is
serialised each list becomes a fixed-size power-sum sketch (``policies.cohorts.sketch``) under the
lineage's element secret, in ``_sbx_sketch*`` columns, and the lists are removed. Without a request
(a job whose scope keeps no ledger, or a caller that does not wire it) the lists are removed all the
same: no unit identifier ever leaves.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from policies.cohorts.cells import SKETCH
from policies.cohorts.sketch import (
    CohortSketch,
    ElementKey,
    SketchRequest,
    bucket_counts,
    element_key,
    elements,
    power_sums,
)

COHORT = "_sbx_cohort"


def cohort_columns(table: pa.Table) -> list[str]:
    return [n for n in table.column_names if n == COHORT or n.startswith(COHORT + "_")]


def sketch_cohorts(table: pa.Table, request: SketchRequest | None) -> pa.Table:
    """``table`` with every ``_sbx_cohort*`` list replaced by a binary ``_sbx_sketch*`` column (NULL
    where the row has no cohort in that slot), or only removed when ``request`` is None.

    >>> t = pa.table({"n": [2, 1], "_sbx_cohort": [[5, 7], [9]]})
    >>> out = sketch_cohorts(t, SketchRequest(secret=bytes(32), power_sums=3))
    >>> out.column_names, [len(b) for b in out.column("_sbx_sketch").to_pylist()]
    (['n', '_sbx_sketch'], [49, 49])
    >>> sketch_cohorts(t, None).column_names
    ['n']
    """
    names = cohort_columns(table)
    if not names:
        return table
    if request is None:
        return table.drop_columns(names)
    key = element_key(request.secret)
    for name in names:
        sketches = _sketch_column(table.column(name), key=key, m=request.power_sums)
        at = table.column_names.index(name)
        table = table.set_column(at, SKETCH + name.removeprefix(COHORT), sketches)
    return table


def _sketch_column(column: pa.ChunkedArray, *, key: ElementKey, m: int) -> pa.Array:
    """One sketch per row: the row's non-NULL units, in one vectorised pass over all rows."""
    rows = len(column)
    if rows == 0 or pa.types.is_null(column.type):
        return pa.nulls(rows, pa.binary())
    lists = column.combine_chunks()
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(lists)
    present = values.is_valid().to_numpy(zero_copy_only=False)
    units = values.to_numpy(zero_copy_only=False)[present]
    parents = parents[present]
    starts = np.searchsorted(parents, np.arange(rows), side="left")
    sizes = np.diff(np.append(starts, len(parents)))
    xs = elements(units, key)
    sums = power_sums(xs, starts, m)
    buckets = bucket_counts(xs, starts)
    valid = lists.is_valid().to_numpy(zero_copy_only=False)
    return pa.array(
        [
            CohortSketch(int(size), tuple(int(v) for v in row), tuple(int(c) for c in counts)).to_bytes()
            if ok and size
            else None
            for ok, size, row, counts in zip(valid, sizes, sums, buckets, strict=True)
        ],
        pa.binary(),
    )
