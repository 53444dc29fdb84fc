"""The released-cohort ledger, pure: sketches of the unit sets behind released cells and the decision
to withhold a cell whose units differ from earlier ones by 1..k-1 (docs/design.md §5)."""

from policies.cohorts.cells import cells_of, releasable_positions, sketch_columns
from policies.cohorts.decisions import Cell, Decision, Outcome
from policies.cohorts.index import CohortIndex
from policies.cohorts.ledger import decide
from policies.cohorts.lineage import Lineage, lineage, lineage_of
from policies.cohorts.sizing import DEFAULT_TRIPLE_BUDGET, least_for, sums_for
from policies.cohorts.sketch import (
    CohortSketch,
    ElementKey,
    SketchRequest,
    element_key,
    elements,
    power_sums,
    sketch_of,
)

__all__ = [
    "DEFAULT_TRIPLE_BUDGET",
    "Cell",
    "CohortIndex",
    "CohortSketch",
    "Decision",
    "ElementKey",
    "Lineage",
    "Outcome",
    "SketchRequest",
    "cells_of",
    "decide",
    "element_key",
    "elements",
    "least_for",
    "lineage",
    "lineage_of",
    "power_sums",
    "releasable_positions",
    "sketch_columns",
    "sketch_of",
    "sums_for",
]
