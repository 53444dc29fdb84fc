"""Inside the sandbox: turn the hidden unit lists of a result into keyed cohort sketches.

``policies.passes.collect_cohorts`` makes the query return, per row, ``_sbx_cohort*`` lists of the
units behind it. Those are identifiers and must not leave the sandbox, so before the result is
serialised each list becomes a fixed-size power-sum sketch (``policies.cohorts.sketch``) under the
lineage's element secret, in ``_sbx_sketch*`` columns, and the lists are removed. Without a request
(a job whose scope keeps no ledger, or a caller that does not wire it) the lists are removed all the
same: no unit identifier ever leaves.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from policies.cohorts.cells import SKETCH
from policies.cohorts.sketch import (
    CohortSketch,
    ElementKey,
    P,
    SketchRequest,
    bucket_counts,
    element_key,
    elements,
    least_elements,
    power_sums,
)

COHORT = "_sbx_cohort"


def cohort_columns(table: pa.Table) -> list[str]:
    return [n for n in table.column_names if n == COHORT or n.startswith(COHORT + "_")]


def sketch_cohorts(table: pa.Table, request: SketchRequest | None, *, threads: int = 1) -> pa.Table:
    """``table`` with every ``_sbx_cohort*`` list replaced by a binary ``_sbx_sketch*`` column (NULL
    where the row has no cohort in that slot), or only removed when ``request`` is None. ``threads``:
    the job's threads; the units are cut into that many chunks, sketched at once (numpy releases the
    GIL) and added up, since power sums and bucket counts of a segment are sums over its units.

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
        sketches = _sketch_column(
            table.column(name), key=key, m=request.power_sums, h=request.least, threads=threads
        )
        at = table.column_names.index(name)
        table = table.set_column(at, SKETCH + name.removeprefix(COHORT), sketches)
    return table


def _sketch_column(column: pa.ChunkedArray, *, key: ElementKey, m: int, h: int, threads: int) -> pa.Array:
    """One sketch per row: the row's non-NULL units, in vectorised passes over all rows at once. The
    lists come from ``ARRAY_AGG(DISTINCT …)``: no unit appears twice in one."""
    rows = len(column)
    if rows == 0 or pa.types.is_null(column.type):
        return pa.nulls(rows, pa.binary())
    lists = column.combine_chunks()
    values = pc.list_flatten(lists)
    # NULLs dropped in Arrow, before numpy: a NULL would turn an integer column into floats.
    present = values.is_valid()
    units = pc.filter(values, present).to_numpy(zero_copy_only=False)
    parents = pc.filter(pc.list_parent_indices(lists), present).to_numpy(zero_copy_only=False)
    starts = np.searchsorted(parents, np.arange(rows), side="left")
    sizes = np.diff(np.append(starts, len(parents)))
    sums, buckets, least = _chunked(units, starts, key=key, m=m, h=h, threads=threads)
    valid = lists.is_valid().to_numpy(zero_copy_only=False)
    return pa.array(
        [
            CohortSketch(
                int(size),
                tuple(int(v) for v in row),
                tuple(int(c) for c in counts),
                tuple(int(v) for v in smallest if v),
            ).to_bytes()
            if ok and size
            else None
            for ok, size, row, counts, smallest in zip(valid, sizes, sums, buckets, least, strict=True)
        ],
        pa.binary(),
    )


def _chunked(
    units: np.ndarray, starts: np.ndarray, *, key: ElementKey, m: int, h: int, threads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power sums, bucket counts and least elements per segment, from ``threads`` contiguous chunks.

    A chunk sees every segment, clipped to itself (a segment outside it is empty there), so the
    per-chunk sums and counts add up to the whole, and the least elements of the whole are the least
    of the chunks' least elements (a unit is listed once per segment, so no element repeats).
    """
    bounds = np.linspace(0, len(units), max(1, threads) + 1).astype(np.int64)

    def one(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        clipped = np.clip(starts - lo, 0, hi - lo)
        xs = elements(units[lo:hi], key)
        return power_sums(xs, clipped, m), bucket_counts(xs, clipped), least_elements(xs, clipped, h)

    if len(bounds) == 2:
        return one(0, len(units))
    with ThreadPoolExecutor(max_workers=len(bounds) - 1) as pool:
        parts = list(pool.map(one, bounds[:-1], bounds[1:]))
    sums = np.sum([p[0] for p in parts], axis=0) % P
    counts = np.sum([p[1] for p in parts], axis=0)
    merged = np.concatenate([p[2] for p in parts], axis=1)
    merged = np.sort(np.where(merged == 0, P, merged), axis=1)[:, :h]
    return sums, counts, np.where(merged == P, 0, merged)
