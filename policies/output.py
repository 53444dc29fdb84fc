"""The output check (docs/design.md §5, layer 3): pure over a result table.

Rows backed by fewer than ``min_units`` distinct privacy units are dropped or merged into one remainder
row; optional rounding; row cap; float precision capped; hidden ``_sbx_`` columns removed. Every
change is counted in the ``SuppressionReport`` with a reason a person can act on: never silent.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import asdict, dataclass, field

import pandas as pd

from policies.canonical import SIGNIFICANT_DIGITS
from policies.errors import OutputInvalid
from policies.model import Disclosure, Rounding

HIDDEN_PREFIX = "_sbx_"
UNITS = "_sbx_units"


@dataclass(frozen=True)
class SuppressionReport:
    rows_in: int
    rows_released: int
    rows_dropped: int = 0
    rows_merged: int = 0
    cells_rounded: int = 0
    rows_capped: int = 0
    reasons: tuple[str, ...] = ()
    min_units: int = 0
    mock: bool = False
    remainder: bool = False
    # Reasons that count rows below min_units: for auditors only (see to_dict).
    small_group_reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The report released with the result (to the operator, and signed in the receipt).

        It says which rules applied, never how many rows fell below ``min_units``: that count depends
        on groups of fewer than k people, so it can answer a question about one person (a query that
        filters a tiny district on a rare diagnosis yields one suppressed row or none). The counts are
        kept for auditors (:meth:`audit_dict`).
        """
        reasons = list(self.reasons)
        if not self.mock:
            reasons.insert(
                0,
                f"every released row stands for at least {self.min_units} distinct units; rows below "
                "that are withheld inside the query, before ordering, limits and the row cap, so they "
                "cannot change which rows come back. How many there were is not disclosed, because that "
                "number can itself reveal a person",
            )
            if self.remainder:
                reasons.insert(
                    1,
                    "the groups below that are merged, inside the query, into one remainder row (group "
                    f"keys shown as NULL), released only when it stands for {self.min_units} distinct "
                    "units of its own",
                )
        return {
            "rows_released": self.rows_released,
            "cells_rounded": self.cells_rounded,
            "rows_capped": self.rows_capped,
            "min_units": self.min_units,
            "mock": self.mock,
            "remainder": self.remainder,
            "reasons": reasons,
        }

    def audit_dict(self) -> dict[str, object]:
        """Every count, for the audit log (auditors only)."""
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["small_group_reasons"] = list(self.small_group_reasons)
        return data


@dataclass(frozen=True)
class ReleasedResult:
    table: pd.DataFrame
    report: SuppressionReport = field(compare=False)


def check_output(
    df: pd.DataFrame,
    disclosure: Disclosure,
    *,
    mock: bool = False,
    additive: Collection[str] = (),
    disjoint_groups: bool = False,
    legacy_rounding_count: bool = False,
) -> ReleasedResult:
    """Apply the scope's disclosure controls to a result that carries ``_sbx_units`` columns.

    ``additive`` names the visible columns that are plain COUNT/SUM aggregates (``PreparedQuery
    .additive_columns``): only those are added up in a remainder row, and only those are rounded when
    given. ``disjoint_groups`` says that no unit can be behind two rows (then the remainder's unit count
    is the sum of its rows'; otherwise only the largest row's count is a safe lower bound).
    ``legacy_rounding_count``: only to replay a job released before the report counted every rounded
    cell (``_round``).

    >>> df = pd.DataFrame({"district": ["a", "b"], "n": [40, 3], "_sbx_units": [40, 3]})
    >>> out = check_output(df, Disclosure(min_units=10))
    >>> out.table.to_dict("list"), out.report.rows_dropped
    ({'district': ['a'], 'n': [40]}, 1)
    """
    units_columns = [c for c in df.columns if c == UNITS or str(c).startswith(UNITS + "_")]
    visible = [c for c in df.columns if not str(c).startswith(HIDDEN_PREFIX)]
    reasons: list[str] = []
    small_group_reasons: list[str] = []
    k = disclosure.min_units
    rows_in = len(df)
    if mock:
        table = df[visible].head(disclosure.max_rows).reset_index(drop=True)
        capped = rows_in - len(table)
        reasons.append(
            "mock data: generated from the declared schema, not the real rows; no suppression applied"
        )
        if capped:
            reasons.append(f"{capped} rows beyond max_rows={disclosure.max_rows} were cut")
        return ReleasedResult(
            _cap_floats(table),
            SuppressionReport(
                rows_in, len(table), rows_capped=capped, reasons=tuple(reasons), min_units=k, mock=True
            ),
        )
    if not units_columns:
        raise OutputInvalid("the result has no _sbx_units column; it was not produced by a prepared query")
    units = df[units_columns].apply(pd.to_numeric, errors="coerce").fillna(0).min(axis=1)
    small = units < k
    kept = df[~small]
    dropped = merged = 0
    if small.any():
        if disclosure.suppression == "remainder":
            remainder = _remainder(df[small], visible, additive, units[small], k, disjoint_groups)
            if remainder is not None:
                kept = pd.concat([kept, remainder], ignore_index=True)
                merged = int(small.sum())
                small_group_reasons.append(
                    f"{merged} rows with fewer than {k} distinct units were merged into one remainder "
                    "row (group keys shown as NULL; only counts and sums are combined)"
                )
            else:
                dropped = int(small.sum())
                small_group_reasons.append(
                    f"{dropped} rows with fewer than {k} distinct units were dropped; together they "
                    f"still could not be shown to reach {k} units, so no remainder row is released"
                )
        else:
            dropped = int(small.sum())
            small_group_reasons.append(
                f"{dropped} rows with fewer than {k} distinct units were dropped (min_units={k}); "
                "broaden the groups (fewer GROUP BY keys, coarser buckets) to keep them"
            )
    table = kept[visible].reset_index(drop=True)
    capped = max(0, len(table) - disclosure.max_rows)
    if capped:
        table = table.head(disclosure.max_rows)
        reasons.append(
            f"{capped} rows beyond max_rows={disclosure.max_rows} were cut; add filters or fewer groups"
        )
    rounded = 0
    if isinstance(disclosure.rounding, Rounding):
        table, rounded = _round(
            table, disclosure.rounding.base, additive, legacy_count_moved=legacy_rounding_count
        )
        if rounded:
            reasons.append(f"{rounded} cells were rounded to a multiple of {disclosure.rounding.base}")
    if disclosure.dp is not None:
        reasons.append(
            "differential privacy noises SQL results only: this table carries no noise, so it is "
            "released only by output checkers"
        )
    report = SuppressionReport(
        rows_in=rows_in,
        rows_released=len(table),
        rows_dropped=dropped,
        rows_merged=merged,
        cells_rounded=rounded,
        rows_capped=capped,
        reasons=tuple(reasons),
        min_units=k,
        remainder=disclosure.suppression == "remainder",
        small_group_reasons=tuple(small_group_reasons),
    )
    return ReleasedResult(_cap_floats(table), report)


def cap_noised(table: pd.DataFrame, disclosure: Disclosure) -> tuple[pd.DataFrame, int]:
    """A differentially private release after its noise: the row cap and the float precision cap, no k
    rule (which keys appear is partition selection's or the public domain's decision, not a count's).
    Returns the table and how many rows the cap cut.

    >>> out, cut = cap_noised(pd.DataFrame({"k": ["a", "b", "c"], "s": [1.0000000000001, 2.0, 3.0]}),
    ...                       Disclosure(min_units=10, max_rows=2))
    >>> out.to_dict("list"), cut
    ({'k': ['a', 'b'], 's': [1.0, 2.0]}, 1)
    """
    capped = max(0, len(table) - disclosure.max_rows)
    return _cap_floats(table.head(disclosure.max_rows).reset_index(drop=True)), capped


def _remainder(
    small: pd.DataFrame,
    visible: list[str],
    additive: Collection[str],
    units: pd.Series,
    k: int,
    disjoint: bool,
) -> pd.DataFrame | None:
    total_units = float(units.sum()) if disjoint else float(units.max())
    if total_units < k:
        return None
    row: dict[str, object] = {}
    for column in small.columns:
        if column in additive:
            row[column] = small[column].sum()
        elif str(column).startswith(HIDDEN_PREFIX):
            row[column] = total_units
        else:
            row[column] = None
    return pd.DataFrame([row], columns=small.columns)[
        visible + [c for c in small.columns if c not in visible]
    ]


def _round(
    table: pd.DataFrame, base: int, additive: Collection[str], *, legacy_count_moved: bool = False
) -> tuple[pd.DataFrame, int]:
    """Round the additive (plain COUNT/SUM) columns to a multiple of ``base``; nothing else.

    Rounding an average, a ratio or a share to a multiple of 5 destroys it (0.47 becomes 0) without
    protecting anyone, so only the columns the caller names as additive are rounded, and with none
    named, none is (guessing from dtypes rounded averages too).

    Returns the table and the number of cells rounded: every non-NULL cell of those columns, whether
    or not its value moved. How many values moved would say which exact values were already multiples
    of ``base`` (a count of 1,499 and one of 1,500 both read 1,500; "1 cell changed" told them apart),
    which is what rounding hides.

    >>> frame = pd.DataFrame({"n": [12, 50], "mean": [0.47, 3.2]})
    >>> rounded, cells = _round(frame, 5, ["n"])
    >>> rounded.to_dict("list"), cells
    ({'n': [10, 50], 'mean': [0.47, 3.2]}, 2)
    >>> _round(frame, 5, ())[1]
    0

    ``legacy_count_moved``: count only the cells whose value moved, as reports did before; never for a
    release, only so that the replay of a job released then reproduces its signed report.

    >>> _round(frame, 5, ["n"], legacy_count_moved=True)[1]
    1
    """
    table = table.copy()
    cells = 0
    targets = [
        c
        for c in table.columns
        if c in additive
        and pd.api.types.is_numeric_dtype(table[c])
        and not pd.api.types.is_bool_dtype(table[c])
    ]
    for column in targets:
        before = table[column]
        after = (before / base).round() * base
        if pd.api.types.is_integer_dtype(before):
            after = after.astype(before.dtype)
        # Legacy (replay only): the count of moved values is what the reports of old jobs signed.
        counted = (before != after) & before.notna() if legacy_count_moved else before.notna()
        cells += int(counted.sum())
        table[column] = after
    return table, cells


def _cap_floats(table: pd.DataFrame) -> pd.DataFrame:
    """Limit floats to 12 significant digits so tiny differences cannot encode extra information."""
    out = table.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].map(_significant)
    return out


def _significant(value: float) -> float:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return value
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
