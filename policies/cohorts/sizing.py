"""How large a cohort sketch is, and how much of it a decision reads: the ledger's sizes, shared by
the index (``index``), the decision (``ledger``) and whoever writes sketches (``sums_for``,
``least_for``)."""

from __future__ import annotations

from policies.cohorts.sketch import CohortSketch

DEFAULT_TRIPLE_BUDGET = 5_000
#: How many of the most recently released cohorts unions and complements are drawn from.
RECENT = 400
#: Power sums beyond the two spare equations: a sketch of ``m`` sums decides differences up to m - 2.
SPARE_SUMS = 2
#: The sketch width every threshold up to COMMON_SUMS - 1 shares (``sums_for``).
COMMON_SUMS = 16


def sums_for(min_units: int) -> int:
    """How many power sums a cohort keeps under ``min_units``: at least ``COMMON_SUMS``, so that every
    threshold up to ``COMMON_SUMS - 1`` writes sketches of one width (a new ``min_units`` must not put
    the cohorts released before it out of reach), and more for a larger k (k - 1 units plus the spare
    equations). A decision reads only the sums its k needs.

    >>> sums_for(10), sums_for(11), sums_for(40)
    (16, 16, 41)
    """
    return max(COMMON_SUMS, max(1, min_units - 1) + SPARE_SUMS)


def least_for(min_units: int) -> int:
    """How many least elements a cohort keeps: one more than the largest difference its sums decide.

    >>> least_for(10), least_for(40)
    (15, 40)
    """
    return sums_for(min_units) - SPARE_SUMS + 1


def capacity(width: int, cohort: CohortSketch, min_units: int) -> tuple[int, int]:
    """The sums a decision reads (those two sketches share, no more than k - 1 needs) and the
    largest difference it decides (k - 1 at most)."""
    shared = min(width, len(cohort.sums))
    d = min(min_units - 1, shared - SPARE_SUMS)
    return d + SPARE_SUMS, d
