"""Margins: the sums of a job's released rows that an analyst can compute, as cohorts of their own.

A result table says more than its rows one by one. ``GROUP BY district, sex`` releases, by adding
rows up, the women of every released district together: a cohort nobody asked for but everybody can
compute. If the women of a small district were suppressed, that sum is "all women minus a few", and
"all women" released earlier (or in the same job) gives the suppressed cell by subtraction, the
oldest attack on a published table (the reason statistical offices apply *secondary suppression*).

So the ledger treats the margins of a result as derived cohorts. A margin is the set of released rows
that agree on some of the visible columns (none: the grand total; one column; two columns), for one
cohort slot, with at least two rows in it; its sketch is the sum of theirs (power sums and counts are
additive, so this is exact when the rows' units are disjoint, and otherwise a multiset whose
difference from any real cohort is large, which never withholds by mistake). Which columns are group
keys is not needed: rows that agree on an aggregate value form a margin too, and any sum of released
rows is something the analyst can compute, so checking it is never wrong.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

#: At most this many margins per job (grand total first, then one column, then two): a wide result
#: must not make the release slow. Margins past it are counted as unchecked for the audit log.
MAX_MARGINS = 64
#: Groupings of two columns are formed only for results of at most this many visible columns.
PAIR_COLUMNS = 8


@dataclass(frozen=True)
class Margin:
    """Released rows (positions among a job's cells) whose cohorts in ``slot`` add up to a cohort."""

    slot: str
    members: tuple[int, ...]


def _key(value: object) -> Hashable:
    """A grouping key for one visible value: NULL and NaN are one value (ROLLUP's subtotal rows)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, Hashable) else repr(value)


def margins_of(
    rows: Sequence[tuple[object, ...]], slots: Sequence[Sequence[str]], released: Sequence[int]
) -> tuple[list[Margin], int]:
    """The margins of the ``released`` rows, and how many were left out by ``MAX_MARGINS``.

    ``rows`` are the visible values of every cell, ``slots`` the cohort slots each cell holds.

    >>> rows = [("North", "F", 40), ("North", "M", 38), ("South", "F", 35), ("South", "M", 41)]
    >>> slots = [("c",)] * 4
    >>> found, _ = margins_of(rows, slots, [0, 1, 2, 3])
    >>> [m.members for m in found]
    [(0, 1, 2, 3), (0, 1), (2, 3), (0, 2), (1, 3)]
    >>> [m.members for m in margins_of(rows, slots, [0, 1])[0]]
    [(0, 1)]
    """
    if len(released) < 2:
        return [], 0
    width = min((len(rows[i]) for i in released), default=0)
    groupings: list[tuple[int, ...]] = [()]
    groupings += [(c,) for c in range(width)]
    if width <= PAIR_COLUMNS:
        groupings += list(itertools.combinations(range(width), 2))
    seen: set[tuple[str, tuple[int, ...]]] = set()
    out: list[Margin] = []
    for columns in groupings:
        groups: dict[tuple[Hashable, ...], list[int]] = {}
        for i in released:
            groups.setdefault(tuple(_key(rows[i][c]) for c in columns), []).append(i)
        for members in groups.values():
            for slot in dict.fromkeys(s for i in members for s in slots[i]):
                having = tuple(i for i in members if slot in slots[i])
                if len(having) < 2 or (slot, having) in seen:
                    continue
                seen.add((slot, having))
                out.append(Margin(slot, having))
    return out[:MAX_MARGINS], max(0, len(out) - MAX_MARGINS)
