"""Inside the sandbox: turn the hidden (unit, value) lists of a SQL result into per-row numbers.

``policies.passes.collect_contributions`` makes the query return, per row, ``_sbx_contrib_<i>`` lists
of each unit's values behind a sum or mean (under a scope with ``disclosure.dominance``). Units are
identifiers and must not leave the sandbox, so before the result is serialised each list becomes the
row's contribution summary (``policies.cell_rules.Contributions.to_rows``: totals, the largest
per-unit contributions and deviations, how many units deviate), a list of numbers in the same column.
The output check applies the dominance and p% rules to it (``policies/contribution_check.py``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from policies.cell_rules import contributions

CONTRIBUTIONS = "_sbx_contrib"


def contribution_columns(table: pa.Table) -> list[str]:
    return [n for n in table.column_names if n.startswith(CONTRIBUTIONS + "_")]


def summarise_contributions(table: pa.Table) -> pa.Table:
    """``table`` with every ``_sbx_contrib_<i>`` list replaced by its summary (NULL where NULL).

    >>> pairs = [{"u": 1, "v": 5.0}, {"u": 1, "v": 2.0}, {"u": 2, "v": 3.0}]  # row median 3
    >>> row = summarise_contributions(pa.table({"_sbx_contrib_0": [pairs]})).column("_sbx_contrib_0")
    >>> summary = row.to_pylist()[0]
    >>> summary[:3], summary[3:5]  # total, units that deviate, total deviation; two largest
    ([10.0, 1.0, 3.0], [7.0, 3.0])
    """
    for name in contribution_columns(table):
        at = table.column_names.index(name)
        table = table.set_column(at, name, _summaries(table.column(name)))
    return table


def _summaries(column: pa.ChunkedArray) -> pa.Array:
    rows = len(column)
    if rows == 0 or pa.types.is_null(column.type):
        return pa.nulls(rows, pa.list_(pa.float64()))
    lists = column.combine_chunks()
    pairs = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    # Dictionary indices are the units' codes (NULL stays NULL: -1, no unit).
    encoded = pc.dictionary_encode(pairs.field("u"))
    unit_codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    values = pairs.field("v").to_pandas().to_numpy(dtype=np.float64, na_value=np.nan)
    summary = contributions(parents, np.asarray(unit_codes, dtype=np.int64), values, n_groups=rows).to_rows()
    valid = lists.is_valid().to_numpy(zero_copy_only=False)
    return pa.array(
        [row.tolist() if ok else None for ok, row in zip(valid, summary, strict=True)], pa.list_(pa.float64())
    )
