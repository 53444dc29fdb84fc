"""What a cross-domain job computes: the supported query shape, as data.

``SELECT <group keys of either side>, COUNT(DISTINCT unit), COUNT(*), COUNT/SUM/AVG(<a column of
either side>) FROM left JOIN right ON left.unit = right.unit [WHERE <filters of either side>] GROUP BY …``.
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
    COUNT_VALUES = "count_values"  # COUNT(<a column of one side>): its non-NULL values over the join
    SUM = "sum"
    AVG = "avg"


@dataclass(frozen=True)
class SidePlan:
    """One domain's part: its unit column, its group keys and the columns it sums (integers after
    scaling by ``10 ** decimals``, so that sums are exact).

    ``one_row``: this side holds at most one row per person, as decided before any data is read (at
    submit, from the catalog: a table declared ``one_row_per_unit`` or measured with unique units at its
    pinned version, or under differential privacy a rows bound of 1). The protocol never decides it
    from the rows: a run whose outcome turned on one person's second row would answer a question about
    that person."""

    unit: str
    group_by: tuple[str, ...] = ()
    sums: tuple[str, ...] = ()
    decimals: int = 2
    one_row: bool = False


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

    def weighting_side(self) -> Side | None:
        """The side whose rows per person weight ``COUNT(*)`` over the join (the other has one row per
        person), or None when both have one row per person (``COUNT(*)`` is the people count)."""
        many = [side for side in Side if not self.side(side).one_row]
        return many[0] if len(many) == 1 else None


def inexact(plan: CrossDomainPlan) -> tuple[tuple[str, str], ...]:
    """``(output column, why)`` for every aggregate the protocol cannot compute exactly under ``plan``:
    ``COUNT(*)`` when neither side has one row per person, ``SUM``/``AVG``/``COUNT(column)`` of a side's
    column when the other side may have several (each person's values would be weighted by its rows
    there). Decided from the plan alone, so from the scope and the catalog, never from the data.

    >>> two = SidePlan("u"), SidePlan("u", sums=("x",))
    >>> [o for o, _ in inexact(CrossDomainPlan(*two, (Aggregate("n", Function.COUNT),)))]
    ['n']
    >>> asked = (Aggregate("n", Function.COUNT), Aggregate("s", Function.SUM, Side.RIGHT, "x"))
    >>> inexact(CrossDomainPlan(SidePlan("u", one_row=True), two[1], asked))
    ()
    """
    out: list[tuple[str, str]] = []
    for aggregate in plan.aggregates:
        if aggregate.function is Function.COUNT and not (plan.left.one_row or plan.right.one_row):
            out.append(
                (
                    aggregate.output,
                    "COUNT(*) across domains needs one side with one row per person (a table declared "
                    "one_row_per_unit, or whose units are unique at its pinned version); ask "
                    "COUNT(DISTINCT unit), or pre-aggregate one side per person",
                )
            )
        if aggregate.side is not None and not plan.side(aggregate.side.other).one_row:
            out.append(
                (
                    aggregate.output,
                    f"SUM, AVG and COUNT of a {aggregate.side.value} column across domains need the other "
                    "side to have one row per person (a table declared one_row_per_unit, or whose units "
                    "are unique at its pinned version): otherwise each person's values would be weighted "
                    "by their rows there; sum a column of the side with several rows per person instead",
                )
            )
    return tuple(out)
