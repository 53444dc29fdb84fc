"""``aggregate()`` as job code calls it: the provenance of the frame's columns becomes findings.

A group key, an aggregated column or the unit column that depends on other rows is a flag
("column 'x' depends on other rows: .iloc at line 4"), and so is a run steered by data; a flag
withholds the table. Group keys traced row by row to group columns of the inputs only are passed to
the helper as traced, so a year of a date or a coarser area is not sent to a checker.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from executors.pyjobs.disclosure import DisclosureFinding
from executors.pyjobs.helpers import Aggregator, ReleasableTable
from executors.pyjobs.taint import UNKNOWN, Taint, Tracked, deep_unwrap, is_data, join, unwrap

if TYPE_CHECKING:
    from executors.pyjobs.tracking import Tracker


class AggregateHook:
    """``aggregate()`` as the job calls it: the frame's provenance becomes findings of the table."""

    def __init__(self, tracker: Tracker, aggregator: Aggregator) -> None:
        self._tracker = tracker
        self._aggregator = aggregator

    def __call__(self, df: object, by: object, aggs: object) -> ReleasableTable:
        findings = list(self._provenance_findings(df, by, aggs))
        return self._aggregator(
            unwrap(df),
            deep_unwrap(by)[0],
            deep_unwrap(aggs)[0],
            provenance=tuple(findings),
            traced_keys=self._traced_keys(df, by),
        )

    def _traced_keys(self, df: object, by: object) -> frozenset[str]:
        """Keys computed row by row from group columns of the inputs only (and the code's constants)."""
        groupable = self._aggregator.key_sources
        if groupable is None or not isinstance(df, Tracked) or is_data(by):
            return frozenset()
        keys = [by] if isinstance(by, str) else list(by) if isinstance(by, (list, tuple)) else []
        traced = set()
        for key in keys:
            sources = df.prov.source_of(key)
            clean = df.prov.column(key, unknown=UNKNOWN) is None
            if clean and sources and sources <= set(groupable):
                traced.add(key)
        return frozenset(traced)

    def _provenance_findings(self, df: object, by: object, aggs: object) -> Iterator[DisclosureFinding]:
        tracker = self._tracker
        where = f"aggregate() #{len(self._aggregator.issued) + 1}"
        if tracker.run_taint is not None:
            yield DisclosureFinding(
                "row-dependence", "flag", f"the job's code is steered by data: {tracker.run_taint}", where
            )
        if not isinstance(df, Tracked):
            yield DisclosureFinding(
                "row-dependence", "flag", "the frame passed to aggregate() is not traced to the inputs", where
            )
            return
        raw_by, by_taint = deep_unwrap(by)
        raw_aggs, aggs_taint = deep_unwrap(aggs)
        if is_data(by) or is_data(aggs):
            taint = join(by_taint, aggs_taint) or Taint("names taken from data")
            yield DisclosureFinding(
                "row-dependence", "flag", f"group keys or aggregates are named by data: {taint}", where
            )
            return
        keys = (
            [raw_by] if isinstance(raw_by, str) else list(raw_by) if isinstance(raw_by, (list, tuple)) else []
        )
        columns: list[object] = [*keys]
        if isinstance(raw_aggs, Mapping):
            columns += [spec[0] for spec in raw_aggs.values() if isinstance(spec, tuple) and spec]
        columns.append(tracker.unit)
        for column in dict.fromkeys(columns):
            column_taint = df.prov.column(column, unknown=UNKNOWN)
            if column_taint is not None:
                yield DisclosureFinding(
                    "row-dependence",
                    "flag",
                    f"column {_label(column)} depends on other rows: {column_taint}",
                    where,
                )


def _label(column: object) -> str:
    """A column label as the report shows it: labels are the code's own strings or the schema's
    (a label computed from data arrives boxed and is refused before this)."""
    text = repr(column)
    return text if len(text) <= 60 else text[:57] + "..."
