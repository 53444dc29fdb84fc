"""What the release rules need to know about a job's query, recorded when the job is submitted.

The output check reads the result table only; some rules need facts about the query that produced it:

* ``additive_columns``: the visible columns that are plain COUNT/SUM aggregates
  (``PreparedQuery.additive_columns``). Only these are added up in a remainder row and rounded.
* ``disjoint_groups``: no privacy unit can be behind two rows, so the units behind a remainder row are
  the sum of its rows' (otherwise only the largest row's count is a safe lower bound, and no remainder
  row can ever reach k).
* ``dp_plan``: under a scope with differential privacy, the query's DP plan (``PreparedQuery.dp_plan``:
  which columns are keys, which are noised, their bounds and the contribution bounds). Recorded rather
  than re-derived from the stored SQL: the plan is computed from the operator's query before the
  rewrite, and a replay must noise-check against the very plan the job was released under.
* ``rules``: which disclosure rules the job was released under (:data:`RULES`). Rules that change
  what a release holds (how its report counts, which tables go to a checker, the size of a mock twin)
  apply to jobs submitted since; a job stored without the marker was released before them, and its
  replay reproduces the rules it was released under (``legacy_disclosure``: only ever for replay; the
  runner marks every job it runs with the current rules, :func:`marked_current`).

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
from policies.dp.plan import Cell, DpColumn, DpPlan

#: The disclosure rules before the operator-facing leaks were closed: a report counted the rounded cells
#: whose value moved, a Python job was sent to a checker only when it printed something, a released
#: ``aggregate()`` table's report listed its model fits, and a mock twin had the real table's row count
#: (within bounds). What a job stored without a ``rules`` marker was released under.
LEGACY_RULES = 0
#: Since then: every rounded cell counted, a Python job whose code prints always goes to a checker, model
#: fits only in a withheld table's report, every twin 1,000 rows.
FIXED_DISCLOSURE_RULES = 1
#: The rules every job is released under now (read when the runner marks a job it runs).
RULES = FIXED_DISCLOSURE_RULES
_RULES_KEY = "rules"


@dataclass(frozen=True)
class ReleaseFacts:
    additive_columns: tuple[str, ...] = ()
    disjoint_groups: bool = False
    dp_plan: DpPlan | None = None
    rules: int = RULES
    #: A cross-domain job's ledger tokens come from each dataset's ledger key (the same across
    #: versions); False for a job stored before, whose tokens came from each version's data key: replay
    #: derives them as the job did.
    dataset_ledger_keys: bool = False

    @property
    def legacy_disclosure(self) -> bool:
        """Released under the rules before the fixes (:data:`LEGACY_RULES`): replay reproduces them,
        since the receipt and the report it compares with were made by them. Never true for a job the
        runner releases now (:func:`marked_current`)."""
        return self.rules < FIXED_DISCLOSURE_RULES

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "additive_columns": list(self.additive_columns),
            "disjoint_groups": self.disjoint_groups,
            _RULES_KEY: self.rules,
        }
        if self.dp_plan is not None:
            out["dp_plan"] = plan_to_json(self.dp_plan)
        if self.dataset_ledger_keys:
            out["ledger_keys"] = "dataset"
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ReleaseFacts:
        """The facts stored with a job (None for a job stored before they were recorded: none known).
        Without a ``rules`` marker the job was released under :data:`LEGACY_RULES`.

        >>> facts = ReleaseFacts.from_json({"additive_columns": ["n"], "disjoint_groups": True, "rules": 1})
        >>> facts.additive_columns, facts.disjoint_groups, facts.rules, facts.dataset_ledger_keys
        (('n',), True, 1, False)
        >>> ReleaseFacts.from_json(None).rules
        0
        >>> marked = ReleaseFacts(dataset_ledger_keys=True)
        >>> ReleaseFacts.from_json(marked.to_json()) == marked
        True
        """
        if not data:
            return cls(rules=LEGACY_RULES)
        return cls(
            additive_columns=tuple(str(c) for c in data.get("additive_columns", ())),
            disjoint_groups=bool(data.get("disjoint_groups", False)),
            dp_plan=plan_from_json(data["dp_plan"]) if data.get("dp_plan") else None,
            rules=int(data.get(_RULES_KEY, LEGACY_RULES)),
            dataset_ledger_keys=data.get("ledger_keys") == "dataset",
        )


def marked_current(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """A job's stored facts as the runner stores them when it runs the job: marked with the rules it is
    released under now (:data:`RULES`), whatever it was submitted under. A job queued across the
    upgrade is released under the current rules, and its replay must reproduce those.

    >>> marked_current({"additive_columns": ["n"], "disjoint_groups": True, "rules": 0})["rules"] == RULES
    True
    >>> ReleaseFacts.from_json(marked_current(None)).legacy_disclosure
    False
    """
    return {**(data or {}), _RULES_KEY: RULES}


def plan_to_json(plan: DpPlan) -> dict[str, Any]:
    """A DP plan as JSON (``plan_from_json`` reads it back equal).

    >>> columns = (DpColumn("d", Cell.KEY, 0, source="t.d"), DpColumn("s", Cell.SUM, 1, "t.x", (0.0, 9.0)))
    >>> plan = DpPlan(columns, rows_per_unit=2, groups_per_unit=1, group_bound_table="t",
    ...               public_keys=(("a", "b"),))
    >>> plan_from_json(plan_to_json(plan)) == plan
    True
    """
    return {
        "columns": [
            {
                "name": c.name,
                "cell": c.cell.value,
                "position": c.position,
                "source": c.source,
                "bounds": list(c.bounds) if c.bounds is not None else None,
            }
            for c in plan.columns
        ],
        "rows_per_unit": plan.rows_per_unit,
        "groups_per_unit": plan.groups_per_unit,
        "group_bound_table": plan.group_bound_table,
        "public_keys": [list(keys) for keys in plan.public_keys] if plan.public_keys is not None else None,
    }


def plan_from_json(data: Mapping[str, Any]) -> DpPlan:
    """The DP plan stored with a job."""
    columns = tuple(
        DpColumn(
            name=str(c["name"]),
            cell=Cell(c["cell"]),
            position=int(c["position"]),
            source=c.get("source"),
            bounds=(float(c["bounds"][0]), float(c["bounds"][1])) if c.get("bounds") else None,
        )
        for c in data["columns"]
    )
    public = data.get("public_keys")
    return DpPlan(
        columns=columns,
        rows_per_unit=int(data["rows_per_unit"]),
        groups_per_unit=int(data["groups_per_unit"]),
        group_bound_table=data.get("group_bound_table"),
        public_keys=tuple(tuple(keys) for keys in public) if public is not None else None,
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
        dp_plan=prepared.dp_plan,
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
