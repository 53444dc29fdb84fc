"""Look-ups against the job's unit pseudonyms, computed only as far as a question needs.

Checking a few output strings against a million-row unit column is a vectorised ``isin`` (about
10 ms); building the full set of pseudonyms (about 80 ms) happens only when the caller did not
pass it and ``aggregate()`` must check every unit of a frame.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from collections.abc import Set as AbstractSet

import pandas as pd


class PseudonymIndex:
    """The pseudonyms in the unit column of a job's inputs (one instance per run)."""

    def __init__(
        self, inputs: Mapping[str, pd.DataFrame], unit_column: str, *, known: AbstractSet[str] | None = None
    ) -> None:
        self._columns = [frame[unit_column] for frame in inputs.values() if unit_column in frame.columns]
        # The caller that pseudonymised the units may hand their set over and save a pass over the data.
        self._all: AbstractSet[str] | None = known

    def count_matches(self, candidates: Collection[str]) -> int:
        """How many distinct ``candidates`` are pseudonyms of this job.

        >>> PseudonymIndex({"t": pd.DataFrame({"u": ["a1", "b2"]})}, "u").count_matches({"a1", "zz"})
        1
        """
        if not candidates:
            return 0
        if self._all is not None:
            return sum(1 for c in set(candidates) if c in self._all)
        wanted = list(candidates)
        found: set[str] = set()
        for column in self._columns:
            hits = column[column.isin(wanted)]
            found.update(str(v) for v in hits.unique())
        return len(found)

    def all_known(self, units: pd.Series) -> bool:
        """Whether every non-missing value of ``units`` is a pseudonym of this job."""
        if self._all is None:
            values: set[str] = set()
            for column in self._columns:
                values.update(str(v) for v in column.dropna().unique())
            self._all = frozenset(values)
        present = {str(v) for v in units.dropna().unique()}
        return present <= self._all
