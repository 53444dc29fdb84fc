"""``aggregate()``: the only way a Python job produces a table that can be released automatically.

It groups, aggregates, and counts the distinct privacy units behind every row itself, from the unit
column of the frame it is given, into the hidden ``_sbx_units`` column (and ``_sbx_units_<i>`` for an
aggregate computed from fewer units because its column has missing values), so the table goes
through ``policies.check_output`` exactly like a SQL result. It refuses a unit column holding values
that are not this job's pseudonyms (units invented to inflate counts), and it evaluates the dominance
(n, k) and p% rules on the per-unit contributions to every sum and mean.
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
from policies.cell_rules import dominated_cells, p_rule_cells

#: Aggregate functions ``aggregate()`` accepts.
AGGREGATES = frozenset({"count", "nunique", "sum", "mean", "median", "min", "max", "std", "var"})
#: Aggregates that may be taken of the unit column itself (how many people, how many rows).
UNIT_AGGREGATES = frozenset({"count", "nunique"})
# Every statistic of a column that one or two units carry can disclose them (the max of a column that is
# zero except for one person is that person's value), so dominance and p% are judged for all of these.
_CONTRIBUTION_AGGREGATES = frozenset({"sum", "mean", "median", "min", "max", "std", "var"})
UNITS_COLUMN = "_sbx_units"


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

    @classmethod
    def of(cls, grouped: Any, units: pd.Series) -> _Codes:
        groups = np.asarray(grouped.ngroup().to_numpy(), dtype=np.int64)
        unit_codes, _ = pd.factorize(units, use_na_sentinel=True)
        return cls(groups, int(grouped.ngroups), np.asarray(unit_codes, dtype=np.int64))


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
        findings: list[DisclosureFinding] = list(provenance)
        call = len(self.issued) + 1
        codes: _Codes | None = None
        findings.extend(self._key_findings(df, [k for k in keys if k not in traced_keys], call))
        for i, (name, (col, fn)) in enumerate(aggs.items(), start=1):
            if bool(df[col].isna().any()):
                subset = df[df[col].notna()]
                counts = subset.groupby(keys, dropna=False, sort=True, observed=True)[
                    self.unit_column
                ].nunique()
                out[f"{UNITS_COLUMN}_{i}"] = counts.reindex(out.index, fill_value=0).astype("int64")
            if fn in _CONTRIBUTION_AGGREGATES and pd.api.types.is_numeric_dtype(df[col]):
                codes = codes or _Codes.of(grouped, df[self.unit_column])
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
        """Dominance (n, k) and p% on per-unit absolute contributions, vectorised over groups (on
        integer codes: grouping by strings dominated the helper's time), for the cells with at least
        ``min_units`` units (the others are suppressed by the output check)."""
        n, k, p = self.thresholds.dominance_n, self.thresholds.dominance_k, self.thresholds.p_percent
        values = np.abs(df[column].to_numpy(dtype=float, na_value=np.nan))
        keep = (codes.units >= 0) & ~np.isnan(values)
        n_units = int(codes.units.max(initial=0)) + 1
        pair_codes, pairs = pd.factorize(codes.groups[keep] * n_units + codes.units[keep])
        sums = np.bincount(pair_codes, weights=values[keep], minlength=len(pairs))
        pair_group = np.asarray(pairs) // n_units
        order = np.lexsort((-sums, pair_group))  # by group, then largest contribution first
        groups, contributions = pair_group[order], sums[order]
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if len(groups) else np.array([], int)
        rank = np.arange(len(groups)) - np.repeat(starts, np.diff(np.r_[starts, len(groups)]))

        def per_group(selected: np.ndarray) -> np.ndarray:
            return np.bincount(groups[selected], weights=contributions[selected], minlength=codes.n_groups)

        totals = per_group(np.ones(len(groups), dtype=bool))
        top_n, x1, x2 = per_group(rank < n), per_group(rank == 0), per_group(rank == 1)
        # Only cells the output check will release: a group below k units is suppressed whatever it holds.
        released = np.bincount(groups, minlength=codes.n_groups) >= self.thresholds.min_units
        dominated = released & dominated_cells(top_n, totals, k=k)
        p_rule = released & p_rule_cells(x1, x2, totals, p_percent=p)
        where = f"aggregate() #{call}, {name!r}"
        findings = []
        if dominated.any():
            rows = ", ".join(str(r) for r in np.flatnonzero(dominated)[:10])
            findings.append(
                DisclosureFinding(
                    "dominance",
                    "flag",
                    f"{int(dominated.sum())} cell(s) where the {n} largest units hold more than {k:.0%} "
                    f"(rows {rows})",
                    where,
                )
            )
        if p_rule.any():
            rows = ", ".join(str(r) for r in np.flatnonzero(p_rule)[:10])
            findings.append(
                DisclosureFinding(
                    "p-ratio",
                    "flag",
                    f"{int(p_rule.sum())} cell(s) fail the p% rule with p={p:g} (rows {rows})",
                    where,
                )
            )
        return findings
