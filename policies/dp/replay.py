"""Replay of a DP release: what to seal, and how an auditor checks a re-run against it.

OpenDP's samplers cannot be seeded, so the noise cannot be drawn again; it is sealed instead
(``policies.dp.noise``). ``sealed_record`` is the JSON document the release function encrypts under the
domain's key with the job; ``replay_problems`` takes the re-run's pre-noise table and that record and
lists every difference: the exact values at the released keys must be those sealed, and exact plus
noise, post-processed, must give the released values. Counts compare exactly; float sums to 1e-9
relative, because DuckDB may add doubles in another order on another run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from policies.dp.keys import plain, released_frame
from policies.dp.noise import DpRelease, exact_values, post_process
from policies.dp.plan import Cell, DpPlan


def sealed_record(release: DpRelease) -> dict[str, Any]:
    """The document to seal with the job: released table, exact values, noise, and the cost.

    >>> import pandas as pd
    >>> from policies.dp.cost import cost_of
    >>> from policies.dp.plan import DpColumn
    >>> from policies.model import DifferentialPrivacy
    >>> plan = DpPlan((DpColumn("n", Cell.COUNT_ROWS, 0),), 1, 1, None, None)
    >>> cost = cost_of(plan, DifferentialPrivacy(epsilon_per_job=1, budget=2))
    >>> frame = pd.DataFrame({"n": [12]})
    >>> record = sealed_record(DpRelease(frame, frame, pd.DataFrame({"n": [0]}), cost))
    >>> sorted(record), record["released"]
    (['cost', 'exact', 'noise', 'released'], {'n': [12]})
    """
    return {
        "released": _plain(release.table),
        "exact": _plain(release.exact),
        "noise": _plain(release.noise),
        "cost": release.cost.to_dict(),
    }


def replay_problems(rerun: pd.DataFrame, plan: DpPlan, record: dict[str, Any]) -> list[str]:
    """Every way a re-run's pre-noise table disagrees with the sealed record (empty: replay holds)."""
    released = released_frame(record)  # keys typed again: compared as dates, numbers, text
    exact = pd.DataFrame(record["exact"])
    noise = pd.DataFrame(record["noise"])
    keys = [c.name for c in plan.keys]
    rows = (
        rerun.head(1).reset_index(drop=True) if not keys else released[keys].merge(rerun, on=keys, how="left")
    )
    problems: list[str] = []
    noisy: dict[tuple[str, str], np.ndarray] = {}
    for column in plan.noised:
        parts = ("sum", "count") if column.cell is Cell.MEAN else ("value",)
        for part in parts:
            name = column.name if part == "value" else f"{column.name}.{part}"
            integer = part == "count" or column.cell in (Cell.COUNT_ROWS, Cell.COUNT_UNITS)
            again = exact_values(rows, column, part, integer=integer)
            sealed = exact[name].to_numpy()
            if not _same(again, sealed, integer):
                problems.append(f"{name}: the re-run's exact values differ from the sealed ones")
            noisy[(column.name, part)] = sealed + noise[name].to_numpy()
    for column in plan.noised:
        expected = np.asarray(post_process(column, noisy), dtype=float)
        if not _same(expected, released[column.name].to_numpy(dtype=float), integer=False):
            problems.append(f"{column.name}: exact + sealed noise does not give the released values")
    return problems


def _same(a: np.ndarray, b: np.ndarray, integer: bool) -> bool:
    if len(a) != len(b):
        return False
    if integer:
        return bool(np.array_equal(a.astype("int64"), b.astype("int64")))
    return all(
        math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-9) for x, y in zip(a, b, strict=True)
    )


def _plain(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """Columns as JSON-ready lists (numpy scalars become Python numbers; dates and timestamps tagged,
    ``policies.dp.keys``, so that they read back as such)."""
    return {str(c): [plain(v) for v in frame[c].tolist()] for c in frame.columns}
