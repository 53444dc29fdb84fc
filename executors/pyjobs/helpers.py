"""``aggregate()``: the only way a Python job produces a table that can be released automatically.

It groups, aggregates, and counts the distinct privacy units behind every row itself, from the unit
column of the frame it is given, into the hidden ``_sbx_units`` column (and ``_sbx_units_<i>`` for an
aggregate computed from fewer units because its column has missing values), so the table goes
through ``policies.check_output`` exactly like a SQL result, and lists those units per row
(``_sbx_cohort``) for the released-cohort ledger (``executors/pyjobs_cohorts.py``). It refuses a unit
column holding values that are not this job's pseudonyms (units invented to inflate counts), and it
evaluates the dominance (n, k) and p% rules on the per-unit contributions to every sum and mean.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from executors.pyjobs.disclosure import DisclosureFinding, DisclosureThresholds
from executors.pyjobs.errors import HelperError
from executors.pyjobs.pseudonyms import PseudonymIndex
from policies.cell_rules import CellRules, contributions, judge

#: Aggregate functions ``aggregate()`` accepts.
AGGREGATES = frozenset({"count", "nunique", "sum", "mean", "median", "min", "max", "std", "var"})
#: Aggregates that may be taken of the unit column itself (how many people, how many rows).
UNIT_AGGREGATES = frozenset({"count", "nunique"})
# Every statistic of a column that one or two units carry can disclose them (the max of a column that is
# zero except for one person is that person's value), so dominance and p% are judged for all of these.
_CONTRIBUTION_AGGREGATES = frozenset({"sum", "mean", "median", "min", "max", "std", "var"})
UNITS_COLUMN = "_sbx_units"
#: The units behind each row, as pseudonyms (mapped back and sketched in the sandbox: never released).
COHORT_COLUMN = "_sbx_cohort"


class ReleasableTable:
    """A table built by ``aggregate()``. Job code can read a copy (``.frame``) but never the original,
    so what is released is exactly what the helper computed."""

    __slots__ = ("_sbx_findings", "_sbx_frame")

    def __init__(self, frame: pd.DataFrame, findings: tuple[DisclosureFinding, ...]) -> None:
        self._sbx_frame = frame
        self._sbx_findings = findings

    @property
    def frame(self) -> pd.DataFrame:
        """The group keys and aggregates, without the hidden unit counts."""
        visible = [c for c in self._sbx_frame.columns if not str(c).startswith("_sbx_")]
        return self._sbx_frame[visible].copy()

    def __repr__(self) -> str:
        return f"<aggregate table>\n{self.frame!r}"


@dataclass(frozen=True)
class _Codes:
    """Each row's group (in the order of the output rows) and unit, as integers (-1: missing unit)."""

    groups: np.ndarray
    n_groups: int
    units: np.ndarray
    labels: np.ndarray  # the unit of each code

    @classmethod
    def of(cls, grouped: Any, units: pd.Series) -> _Codes:
        groups = np.asarray(grouped.ngroup().to_numpy(), dtype=np.int64)
        unit_codes, labels = pd.factorize(units, use_na_sentinel=True)
        return cls(
            groups,
            int(grouped.ngroups),
            np.asarray(unit_codes, dtype=np.int64),
            np.asarray(labels, dtype=object),
        )

    def pairs(self, keep: np.ndarray | None = None) -> np.ndarray:
        """The distinct (group, unit) pairs of the rows in ``keep`` (all with a unit by default) as
        ``group * n_units + unit``, sorted: grouped by output row."""
        known = self.units >= 0 if keep is None else (self.units >= 0) & keep
        keys = np.sort(self.groups[known] * max(len(self.labels), 1) + self.units[known])
        return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys

    def cohorts(self, keep: np.ndarray | None = None) -> list[np.ndarray]:
        """The distinct units behind each output row (those in ``keep``), in row order: the
        released-cohort ledger's view of the row, like a SQL row's ``ARRAY_AGG(DISTINCT unit)``."""
        n = max(len(self.labels), 1)
        keys = self.pairs(keep)
        bounds = np.searchsorted(keys // n, np.arange(self.n_groups + 1))
        members = self.labels[keys % n]
        return [members[bounds[i] : bounds[i + 1]] for i in range(self.n_groups)]


#: Attributes job code may read on a ``ReleasableTable``.
RELEASABLE_ATTRIBUTES = frozenset({"frame"})


@dataclass
class Aggregator:
    """The ``aggregate`` callable of one run, with the tables it issued (in call order)."""

    unit_column: str
    pseudonyms: PseudonymIndex
    thresholds: DisclosureThresholds
    # Original values of the columns a SQL job could group by (None: no such policy, e.g. unit tests
    # of the runtime alone). A key that is not one of them, unmodified, is flagged for a checker.
    key_sources: Mapping[str, list[pd.MultiIndex]] | None = None
    issued: list[ReleasableTable] = field(default_factory=list)

    def __call__(
        self,
        df: pd.DataFrame,
        by: str | Sequence[str],
        aggs: Mapping[str, tuple[str, str]],
        *,
        provenance: Sequence[DisclosureFinding] = (),
        traced_keys: AbstractSet[str] = frozenset(),
    ) -> ReleasableTable:
        """Group, aggregate and count units. ``provenance``: findings about where the frame's columns
        come from (a flag there withholds the table, like a dominance flag). ``traced_keys``: group keys
        the runtime traced, row by row, to group columns of the inputs only (``dt.year`` of a date,
        a band of an age a SQL job could group by); the others are checked by value."""
        keys = [by] if isinstance(by, str) else list(by)
        self._validate(df, keys, aggs)
        if not self.pseudonyms.all_known(df[self.unit_column]):
            raise HelperError(
                f"the unit column {self.unit_column!r} holds values that are not this job's pseudonyms; "
                "aggregate() needs it exactly as the input gave it"
            )
        grouped = df.groupby(keys, dropna=False, sort=True, observed=True)
        out = grouped.agg(**{name: pd.NamedAgg(column=col, aggfunc=fn) for name, (col, fn) in aggs.items()})
        out[UNITS_COLUMN] = grouped[self.unit_column].nunique()
        codes = _Codes.of(grouped, df[self.unit_column])
        out[COHORT_COLUMN] = pd.Series(codes.cohorts(), index=out.index, dtype=object)
        findings: list[DisclosureFinding] = list(provenance)
        call = len(self.issued) + 1
        findings.extend(self._key_findings(df, [k for k in keys if k not in traced_keys], call))
        for i, (name, (col, fn)) in enumerate(aggs.items(), start=1):
            if bool(df[col].isna().any()):
                subset = df[df[col].notna()]
                counts = subset.groupby(keys, dropna=False, sort=True, observed=True)[
                    self.unit_column
                ].nunique()
                out[f"{UNITS_COLUMN}_{i}"] = counts.reindex(out.index, fill_value=0).astype("int64")
                with_value = df[col].notna().to_numpy()
                out[f"{COHORT_COLUMN}_{i}"] = pd.Series(
                    codes.cohorts(with_value), index=out.index, dtype=object
                )
            if fn in _CONTRIBUTION_AGGREGATES and pd.api.types.is_numeric_dtype(df[col]):
                findings.extend(self._contribution_findings(df, codes, col, name, call))
            if fn in {"min", "max"}:
                findings.append(
                    DisclosureFinding(
                        "dominance",
                        "note",
                        f"{fn} of a group is one unit's own value",
                        f"aggregate() #{call}, {name!r}",
                    )
                )
        table = ReleasableTable(out.reset_index(), tuple(findings))
        self.issued.append(table)
        return table

    def _key_findings(self, df: pd.DataFrame, keys: list[str], call: int) -> Iterator[DisclosureFinding]:
        """A group key must be a column a SQL job could group by, holding for every row a value its
        person (unit) has in the inputs: a renamed copy of a filter or aggregate column
        (``t['dx'] = t['diagnosis']``), or a group column overwritten with one, would otherwise release
        what the scope keeps back. Joins, filters and re-ordering keep each person's own values."""
        if self.key_sources is None:
            return
        for key in keys:
            pairs = pd.MultiIndex.from_arrays([df[self.unit_column], df[key]])
            if not any(bool(pairs.isin(source).all()) for source in self.key_sources.get(key, ())):
                yield DisclosureFinding(
                    "group-key",
                    "flag",
                    f"group key {key!r} is not an unmodified group column of the inputs (a derived or "
                    "copied column, or rows re-indexed by a merge); an output checker must review it",
                    f"aggregate() #{call}",
                )

    def _validate(self, df: object, keys: list[str], aggs: object) -> None:
        if not isinstance(df, pd.DataFrame):
            raise HelperError("aggregate() needs a DataFrame as its first argument")
        if self.unit_column not in df.columns:
            raise HelperError(
                f"the frame passed to aggregate() must keep the unit column {self.unit_column!r}"
            )
        if not keys:
            raise HelperError("aggregate() needs at least one group key in by=")
        for key in keys:
            if not isinstance(key, str) or key not in df.columns:
                raise HelperError("every group key in by= must be a column of the frame")
            if key == self.unit_column:
                raise HelperError("grouping by the unit column would release row-level data")
            if key.startswith("_sbx_"):
                raise HelperError("names starting with '_sbx_' are reserved")
        if not isinstance(aggs, Mapping) or not aggs:
            raise HelperError("aggs= must map output names to (column, function) pairs")
        for name, spec in aggs.items():
            if not isinstance(name, str) or not name or name.startswith("_") or name in keys:
                raise HelperError("aggregate output names must be new, non-empty and not start with '_'")
            if not (isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(s, str) for s in spec)):
                raise HelperError("each aggregate must be a (column, function) pair of strings")
            column, function = spec
            if column not in df.columns:
                raise HelperError("aggregate columns must be columns of the frame")
            if column == self.unit_column and function not in UNIT_AGGREGATES:
                raise HelperError(
                    f"the unit column {self.unit_column!r} can only be counted "
                    f"({', '.join(sorted(UNIT_AGGREGATES))}): other aggregates of it mean nothing"
                )
            if function not in AGGREGATES:
                raise HelperError(f"aggregate functions are {', '.join(sorted(AGGREGATES))}")

    def _contribution_findings(
        self, df: pd.DataFrame, codes: _Codes, column: str, name: str, call: int
    ) -> list[DisclosureFinding]:
        """Dominance (n, k), p% and the contributor threshold (``policies.cell_rules.judge``) on the
        per-unit contributions and their deviations from each cell's median, for the cells with at
        least ``min_units`` units (the others are suppressed by the output check)."""
        t = self.thresholds
        rules = CellRules(
            min_units=t.min_units, dominance_n=t.dominance_n, dominance_k=t.dominance_k, p_percent=t.p_percent
        )
        values = df[column].to_numpy(dtype=float, na_value=np.nan)
        verdicts = judge(contributions(codes.groups, codes.units, values, n_groups=codes.n_groups), rules)
        # Only cells the output check will release: a group below k units is suppressed whatever it holds.
        released = _cell_units(codes, values) >= t.min_units
        where = f"aggregate() #{call}, {name!r}"
        return [
            DisclosureFinding(rule, "flag", f"{int(cells.sum())} cell(s) {what} (rows {_rows(cells)})", where)
            for rule, cells, what in (
                (
                    "dominance",
                    released & verdicts.dominated,
                    f"where the {t.dominance_n} largest units hold more than {t.dominance_k:.0%} of the "
                    "values, or of their deviations from the cell's typical value",
                ),
                ("p-ratio", released & verdicts.p_rule, f"fail the p% rule with p={t.p_percent:g}"),
                (
                    "few-contributors",
                    released & verdicts.few_contributors,
                    f"where fewer than {t.min_units} units' values differ from the cell's typical value "
                    "(none included): it would describe those few units, or whether any exists; aggregate a "
                    "column that varies across at least that many units (for a constant, count rows instead)",
                ),
            )
            if cells.any()
        ]


def _cell_units(codes: _Codes, values: np.ndarray) -> np.ndarray:
    """Distinct units with a value per cell (what the output check counts for this aggregate)."""
    pairs = codes.pairs(~np.isnan(values))
    return np.bincount(pairs // max(len(codes.labels), 1), minlength=codes.n_groups)


def _rows(cells: np.ndarray) -> str:
    rows = np.flatnonzero(cells)
    return ", ".join(str(r) for r in rows[:10]) + (" …" if len(rows) > 10 else "")
