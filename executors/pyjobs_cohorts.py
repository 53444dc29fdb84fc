"""Inside the sandbox: the cohorts of a Python job's ``aggregate()`` rows, sketched like a SQL job's.

``aggregate()`` lists, per row, the units behind it as the job saw them (``_sbx_cohort``, and
``_sbx_cohort_<i>`` for an aggregate computed from fewer units): this job's pseudonyms, which differ in
every job. The released-cohort ledger must see the same person as the same element in every job, SQL
or Python, so each pseudonym is mapped back to the unit value the input query read (the value a SQL
job's ``ARRAY_AGG(DISTINCT unit)`` lists, with the same Arrow type), and the lists then go through
``executors.cohort_sketches.sketch_cohorts`` exactly as a SQL result's do: sketched under the lineage's
element secret, or dropped when the job keeps no ledger. Neither the pseudonyms nor the units leave
the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from executors.cohort_sketches import cohort_columns, sketch_cohorts
from executors.errors import ExecutionFailed
from policies.cohorts.sketch import SketchRequest


def stored_units(pairs: Iterable[tuple[pa.Array, pa.Array]]) -> pa.Table:
    """One row per distinct pseudonym: ``token`` and the ``unit`` value it stands for, from the
    (pseudonyms, units) columns of each input; the units take the first input's type.

    >>> stored_units([(pa.array(["a", "b", "a"]), pa.array([7, 8, 7]))]).to_pylist()
    [{'token': 'a', 'unit': 7}, {'token': 'b', 'unit': 8}]
    """
    tokens: list[pa.Array] = []
    units: list[pa.Array] = []
    for token, unit in pairs:
        if units and unit.type != units[0].type:
            try:
                unit = pc.cast(unit, units[0].type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ExecutionFailed(
                    "the unit columns of the job's tables have different types; the released-cohort "
                    "ledger needs one value per person"
                ) from exc
        tokens.append(pc.cast(token, pa.string()))
        units.append(unit)
    if not tokens:
        return pa.table({"token": pa.array([], pa.string()), "unit": pa.array([], pa.string())})
    token_all = pa.concat_arrays(
        [t.combine_chunks() if isinstance(t, pa.ChunkedArray) else t for t in tokens]
    )
    unit_all = pa.concat_arrays([u.combine_chunks() if isinstance(u, pa.ChunkedArray) else u for u in units])
    valid = token_all.is_valid()
    token_all, unit_all = pc.filter(token_all, valid), pc.filter(unit_all, valid)
    _, first = np.unique(token_all.to_numpy(zero_copy_only=False).astype(object), return_index=True)
    keep = pa.array(np.sort(first))
    return pa.table({"token": token_all.take(keep), "unit": unit_all.take(keep)})


def sketch_aggregate_cohorts(table: pa.Table, units: pa.Table, request: SketchRequest | None) -> pa.Table:
    """``table`` (an ``aggregate()`` result) with its pseudonym lists mapped to stored units and then
    sketched (or dropped without ``request``), like a SQL result's cohorts.

    >>> units = stored_units([(pa.array(["a", "b"]), pa.array([7, 8]))])
    >>> t = pa.table({"n": [2], "_sbx_cohort": [["b", "a"]]})
    >>> via_python = sketch_aggregate_cohorts(t, units, SketchRequest(secret=bytes(32), power_sums=3))
    >>> via_sql = sketch_cohorts(pa.table({"n": [2], "_sbx_cohort": [[7, 8]]}),
    ...                          SketchRequest(secret=bytes(32), power_sums=3))
    >>> via_python.equals(via_sql)
    True
    """
    names = cohort_columns(table)
    if request is None or not names:
        return sketch_cohorts(table, None)
    index = pd.Index(units.column("token").to_numpy(zero_copy_only=False))
    stored = units.column("unit").combine_chunks()
    for name in names:
        column = table.column(name).combine_chunks()
        if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
            continue  # an all-empty column arrives untyped: nothing to map (sketched as NULL)
        flat = pc.list_flatten(column).to_numpy(zero_copy_only=False)
        positions = index.get_indexer(flat) if len(flat) else np.zeros(0, dtype=np.int64)
        if (positions < 0).any():
            raise ExecutionFailed("aggregate() listed a unit that is not one of this job's pseudonyms")
        mapped = pa.ListArray.from_arrays(
            pc.subtract(column.offsets, column.offsets[0]), stored.take(pa.array(positions, pa.int64()))
        )
        table = table.set_column(table.column_names.index(name), name, mapped)
    return sketch_cohorts(table, request)
