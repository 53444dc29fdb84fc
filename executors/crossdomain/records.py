"""A domain's own rows, pre-aggregated per person and grouped: the only form that enters the protocol.

Each domain runs this on its own (already filtered and masked) rows, in its own process: per group key
and unit, the number of rows and the sum of every summed column, scaled to integers so that sums are
exact. Nothing here leaves the domain; ``domain_party`` blinds the units and encrypts the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from executors.crossdomain.errors import CrossDomainUnsupported
from executors.crossdomain.packing import VALUE_BITS
from executors.crossdomain.plan import SidePlan

GroupKey = tuple[object, ...]


class Person(NamedTuple):
    """One unit within one group: its unit id and its slots (rows, then each summed column).

    A named tuple, not a frozen dataclass: a domain builds one per person (200,000 in the demo), and a
    tuple is built several times faster."""

    unit: str
    slots: tuple[int, ...]


@dataclass(frozen=True)
class PersonGroups:
    """A domain's people per group key, and whether every unit has at most one row."""

    groups: Mapping[GroupKey, tuple[Person, ...]]
    one_row_per_unit: bool


def per_person(rows: pd.DataFrame, plan: SidePlan) -> PersonGroups:
    """Pre-aggregate ``rows`` per (group key, unit) as ``plan`` says.

    >>> rows = pd.DataFrame({"pid": ["a", "a", "b"], "cost": [1.5, 2.0, 4.25]})
    >>> out = per_person(rows, SidePlan(unit="pid", sums=("cost",)))
    >>> out.groups[()], out.one_row_per_unit
    ((Person(unit='a', slots=(2, 350)), Person(unit='b', slots=(1, 425))), False)
    """
    missing = [c for c in (plan.unit, *plan.group_by, *plan.sums) if c not in rows.columns]
    if missing:
        raise CrossDomainUnsupported(f"the domain's rows lack the column(s) {missing} the plan names")
    frame = rows[[plan.unit, *plan.group_by, *plan.sums]].copy()
    if frame[plan.unit].isna().any():
        raise CrossDomainUnsupported(
            f"rows with a NULL {plan.unit!r} cannot be joined: filter them out with "
            f"WHERE {plan.unit} IS NOT NULL"
        )
    frame[plan.unit] = frame[plan.unit].astype(str)
    for column in plan.sums:
        frame[column] = _scaled(frame[column], column=column, decimals=plan.decimals)
    keys = [*plan.group_by, plan.unit]
    grouped = frame.groupby(keys, sort=True, dropna=False)
    counts = grouped.size().rename("_rows")
    table = pd.concat([counts, grouped[list(plan.sums)].sum()], axis=1).reset_index()
    # Column-wise to Python lists once (a row-wise walk over a frame is several times slower), then one
    # pass that builds each person: this runs once per person of the domain, before the blinding.
    units = [str(u) for u in table[plan.unit].tolist()]
    slots = zip(
        table["_rows"].astype("int64").tolist(),
        *(table[column].astype("int64").tolist() for column in plan.sums),
        strict=True,
    )
    people = [Person(unit, values) for unit, values in zip(units, slots, strict=True)]
    groups: dict[GroupKey, list[Person]] = {}
    if plan.group_by:
        group_keys: list[GroupKey] = list(
            zip(*(table[column].tolist() for column in plan.group_by), strict=True)
        )
        for key, person in zip(group_keys, people, strict=True):
            groups.setdefault(key, []).append(person)
    elif people:
        groups[()] = people
    return PersonGroups(
        groups={key: tuple(people) for key, people in groups.items()},
        one_row_per_unit=bool(frame[plan.unit].is_unique),
    )


def _scaled(values: pd.Series, *, column: str, decimals: int) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any():
        raise CrossDomainUnsupported(
            f"SUM/AVG of {column!r} across domains needs numbers without NULLs: add "
            f"WHERE {column} IS NOT NULL"
        )
    scaled = (numbers * 10**decimals).round()
    if (scaled < 0).any() or (scaled >= 1 << VALUE_BITS).any():
        raise CrossDomainUnsupported(
            f"SUM/AVG of {column!r} across domains needs values in "
            f"[0, {(1 << VALUE_BITS) / 10**decimals:.0f}) "
            "(the encrypted sums are non-negative integers); clamp or shift the column first"
        )
    return pd.Series(scaled.astype("int64"))
