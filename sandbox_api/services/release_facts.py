"""What the release rules need to know about a job's query, recorded when the job is submitted.

The output check reads the result table only; some rules need facts about the query that produced it:

* ``additive_columns``: the visible columns that are plain COUNT/SUM aggregates
  (``PreparedQuery.additive_columns``). Only these are added up in a remainder row and rounded.
* ``disjoint_groups``: no privacy unit can be behind two rows, so the units behind a remainder row are
  the sum of its rows' (otherwise only the largest row's count is a safe lower bound, and no remainder
  row can ever reach k).

They are stored with the job (``jobs.release_facts``) and read back at release by
``services/release.py``, by the runner and by replay alike, so a replay checks its result exactly as
the job's was checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies import PreparedQuery, Scope
from policies.disjoint_groups import disjoint_groups


@dataclass(frozen=True)
class ReleaseFacts:
    additive_columns: tuple[str, ...] = ()
    disjoint_groups: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"additive_columns": list(self.additive_columns), "disjoint_groups": self.disjoint_groups}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ReleaseFacts:
        """The facts stored with a job (None for a job stored before they were recorded: none known).

        >>> ReleaseFacts.from_json({"additive_columns": ["n"], "disjoint_groups": True})
        ReleaseFacts(additive_columns=('n',), disjoint_groups=True)
        >>> ReleaseFacts.from_json(None)
        ReleaseFacts(additive_columns=(), disjoint_groups=False)
        """
        if not data:
            return cls()
        return cls(
            additive_columns=tuple(str(c) for c in data.get("additive_columns", ())),
            disjoint_groups=bool(data.get("disjoint_groups", False)),
        )


def facts_of(
    prepared: PreparedQuery, scope: Scope, *, unique_units: Mapping[tuple[str, str], bool]
) -> ReleaseFacts:
    """The release facts of a prepared SQL query.

    ``unique_units`` says, per ``(dataset, table)``, whether that table holds one row per privacy unit
    (recorded at upload); :func:`policies.disjoint_groups.disjoint_groups` decides from it and the SQL.
    """
    return ReleaseFacts(
        additive_columns=tuple(prepared.additive_columns),
        disjoint_groups=disjoint_groups(prepared, scope, unique_units=unique_units),
    )


def unique_units_of(
    versions: Mapping[str, Any], tables: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], bool]:
    """Per ``(dataset, table)``: does its pinned version hold one row per unit (as recorded at upload)?

    ``versions`` maps a dataset to its catalog view (``VersionView``: ``tables`` as stored).
    """
    out: dict[tuple[str, str], bool] = {}
    for dataset, table in tables:
        version = versions.get(dataset)
        described = (
            next((t for t in version.tables if t.get("name") == table), None) if version is not None else None
        )
        out[(dataset, table)] = bool(described is not None and described.get("unique_units") is True)
    return out
