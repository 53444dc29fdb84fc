"""A domain's own rows, pre-aggregated per person and grouped: the only form that enters the protocol.

Each domain runs this on its own (already filtered and masked) rows, in its own process: per group key
and unit, the number of rows and the sum of every summed column, scaled to integers so that sums are
exact. Nothing here leaves the domain; ``domain_party`` blinds the units and encrypts the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from executors.crossdomain.errors import CrossDomainUnsupported
from executors.crossdomain.packing import VALUE_BITS
from executors.crossdomain.plan import SidePlan

GroupKey = tuple[object, ...]


class Person(NamedTuple):
    """One unit within one group: its unit id and its slots (rows, then per summed column its positive
    part, its negative part and its count of non-``NULL`` values: ``SLOTS_PER_SUM``).

    A named tuple, not a frozen dataclass: a domain builds one per person (200,000 in the demo), and a
    tuple is built several times faster."""

    unit: str
    slots: tuple[int, ...]


#: Slots per summed column: the sum of its positive values, of its negative values (as magnitudes,
#: since the encrypted and shared sums are non-negative integers), and its count of non-NULL values.
SLOTS_PER_SUM = 3
#: The most a slot of one person may hold (scaled): a larger value, or a larger sum of one person's
#: values, is clamped to it. A fixed rule, decided before the data is read, instead of a failure that
#: would say the value is there.
MAX_SCALED = (1 << VALUE_BITS) - 1


def sum_slots(index: int) -> tuple[int, int, int]:
    """The slots (positive part, negative part, non-NULL count) of summed column ``index``.

    >>> sum_slots(0), sum_slots(1)
    ((1, 2, 3), (4, 5, 6))
    """
    first = 1 + SLOTS_PER_SUM * index
    return first, first + 1, first + 2


@dataclass(frozen=True)
class PersonGroups:
    """A domain's people per group key, and whether every unit has at most one row."""

    groups: Mapping[GroupKey, tuple[Person, ...]]
    one_row_per_unit: bool


def per_person(rows: pd.DataFrame, plan: SidePlan) -> PersonGroups:
    """Pre-aggregate ``rows`` per (group key, unit) as ``plan`` says, with SQL's meaning of ``NULL``:
    a row whose unit is ``NULL`` joins nothing and drops out; a ``NULL`` value adds nothing to its
    column's sum or to its non-``NULL`` count (``AVG`` divides by that count). Nothing here fails on
    the values: negative values go to their own slot, and a value past the exact range is clamped to it.

    >>> rows = pd.DataFrame({"pid": ["a", "a", "b", None], "cost": [1.5, None, -4.25, 9.0]})
    >>> out = per_person(rows, SidePlan(unit="pid", sums=("cost",)))
    >>> out.groups[()], out.one_row_per_unit
    ((Person(unit='a', slots=(2, 150, 0, 1)), Person(unit='b', slots=(1, 0, 425, 1))), False)
    """
    missing = [c for c in (plan.unit, *plan.group_by, *plan.sums) if c not in rows.columns]
    if missing:
        raise CrossDomainUnsupported(f"the domain's rows lack the column(s) {missing} the plan names")
    frame = rows[[plan.unit, *plan.group_by]].copy()
    keep = frame[plan.unit].notna().to_numpy()
    slot_columns: list[str] = []
    for index, column in enumerate(plan.sums):
        positive, negative, count = _scaled(rows[column], decimals=plan.decimals)
        names = [f"_xd_slot_{index}_{part}" for part in ("pos", "neg", "n")]
        frame[names[0]], frame[names[1]], frame[names[2]] = positive, negative, count
        slot_columns.extend(names)
    frame = frame[keep]
    frame[plan.unit] = frame[plan.unit].astype(str)
    keys = [*plan.group_by, plan.unit]
    grouped = frame.groupby(keys, sort=True, dropna=False)
    counts = grouped.size().rename("_rows")
    table = (
        pd.concat([counts, grouped[slot_columns].sum()], axis=1) if slot_columns else counts.to_frame()
    ).reset_index()
    # Column-wise to Python lists once (a row-wise walk over a frame is several times slower), then one
    # pass that builds each person: this runs once per person of the domain, before the blinding.
    units = [str(u) for u in table[plan.unit].tolist()]
    slots = zip(
        table["_rows"].astype("int64").clip(upper=MAX_SCALED).tolist(),
        *(table[column].astype("int64").clip(upper=MAX_SCALED).tolist() for column in slot_columns),
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


def _scaled(values: pd.Series, *, decimals: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each value scaled to an integer at ``decimals``, as its positive part, its negative part (a
    magnitude) and whether it is non-``NULL``; ``NULL`` (or text that is not a number) gives zeros.
    Each part is clamped to ``MAX_SCALED``, so that a person's sums stay exact below it."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    present = ~np.isnan(numbers)
    scaled = np.clip(np.round(np.where(present, numbers, 0.0) * 10**decimals), -MAX_SCALED, MAX_SCALED)
    positive = np.where(scaled > 0, scaled, 0).astype("int64")
    negative = np.where(scaled < 0, -scaled, 0).astype("int64")
    return positive, negative, present.astype("int64")
