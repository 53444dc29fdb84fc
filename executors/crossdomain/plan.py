"""What a cross-domain job computes: the supported query shape, as data.

``SELECT <group keys of either side>, COUNT(DISTINCT unit), COUNT(*), SUM/AVG(<a column of either
side>) FROM left JOIN right ON left.unit = right.unit [WHERE <filters of either side>] GROUP BY …``.
Each domain filters, masks and pre-aggregates its own rows per person; the plan says which of its
columns are group keys and which are summed, and how the output columns are made from the sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Side(StrEnum):
    LEFT = "left"
    RIGHT = "right"

    @property
    def other(self) -> Side:
        return Side.RIGHT if self is Side.LEFT else Side.LEFT


class Function(StrEnum):
    COUNT_UNITS = "count_units"  # COUNT(DISTINCT unit): the number of matched people in the cell
    COUNT = "count"  # COUNT(*) of the joined rows
    SUM = "sum"
    AVG = "avg"


@dataclass(frozen=True)
class SidePlan:
    """One domain's part: its unit column, its group keys and the columns it sums (integers after
    scaling by ``10 ** decimals``, so that sums are exact)."""

    unit: str
    group_by: tuple[str, ...] = ()
    sums: tuple[str, ...] = ()
    decimals: int = 2


@dataclass(frozen=True)
class Aggregate:
    """One output column: ``function`` of ``column`` of ``side`` (neither for COUNT_UNITS and COUNT)."""

    output: str
    function: Function
    side: Side | None = None
    column: str | None = None


@dataclass(frozen=True)
class CrossDomainPlan:
    """The whole job: both parts and the output columns (group keys first, left's then right's)."""

    left: SidePlan
    right: SidePlan
    aggregates: tuple[Aggregate, ...]

    def side(self, side: Side) -> SidePlan:
        return self.left if side is Side.LEFT else self.right
