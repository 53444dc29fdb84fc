"""Margin arithmetic for secondary suppression: the sketch of a sum of rows (``total_of``), the
margins of the kept rows with their totals (``margin_totals``), and whether a total is one of its own
parts twice give or take 1..k-1 (``twice_a_part``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from policies.cohorts.decisions import Cell
from policies.cohorts.difference import within_many
from policies.cohorts.margins import Margin, margins_of
from policies.cohorts.sizing import SPARE_SUMS, capacity
from policies.cohorts.sketch import CohortSketch, P

#: A margin, its parts (one cohort per member row) and their total.
MarginTotal = tuple[Margin, list[CohortSketch], CohortSketch]


def margin_totals(cells: Sequence[Cell], kept: list[int]) -> tuple[list[MarginTotal], int]:
    """The margins of the ``kept`` rows that have a total, with their parts and total, in order; and
    how many ``margins_of`` left out."""
    found, unchecked = margins_of([c.row for c in cells], [c.slots for c in cells], kept)
    out: list[MarginTotal] = []
    for margin in found:
        parts = [c for c in (cells[i].slot(margin.slot) for i in margin.members) if c is not None]
        total = total_of(parts)
        if total is not None:
            out.append((margin, parts, total))
    return out, unchecked


def total_of(parts: Sequence[CohortSketch]) -> CohortSketch | None:
    """The sketch of the multiset union of ``parts`` (sums and counts add up; the least elements of
    the union are the least of the parts' least elements, when every part keeps them); None without
    parts."""
    if not parts:
        return None
    width = min(len(c.sums) for c in parts)
    nbuckets = min(len(c.buckets) for c in parts)
    sums = np.array([c.sums[:width] for c in parts], dtype=np.int64).sum(axis=0) % P
    buckets = np.array([c.buckets[:nbuckets] for c in parts], dtype=np.int64).sum(axis=0) % 2**16
    least: tuple[int, ...] = ()
    if all(c.least for c in parts):
        h = width - SPARE_SUMS + 1  # what ``least_for`` keeps at this width
        least = tuple(sorted({v for c in parts for v in c.least}))[:h]
    return CohortSketch(
        sum(c.units for c in parts), tuple(int(v) for v in sums), tuple(int(b) for b in buckets), least
    )


def twice_a_part(total: CohortSketch, parts: Sequence[CohortSketch], min_units: int) -> bool:
    """Whether ``total - 2 * part`` holds 1..k-1 units for a part: the part is a subtotal of the others."""
    width, d = capacity(len(total.sums), total, min_units)
    d = min(d, min((capacity(len(p.sums), p, min_units)[1] for p in parts), default=d))
    if d < 1:
        return False
    units = np.array([p.units for p in parts], dtype=np.int64)
    delta = total.units - 2 * units
    near = np.abs(delta) <= d
    if not near.any():
        return False
    held = np.array([p.sums[:width] for p in parts], dtype=np.int64)[near]
    diff = (np.array(total.sums[:width], dtype=np.int64)[None, :] - 2 * held) % P
    exact = (delta[near] == 0) & ~np.any(diff != 0, axis=1)
    return bool((within_many(diff, delta[near], d) & ~exact).any())
