"""Dominance and p% on SQL results, end to end: the rewritten query in the real sandbox (which reduces
the hidden (unit, value) lists to numbers), then the one release function.

The fact wanted: the income of North's top earner (``EARNER``), one of North's 12 people (above
``min_units`` = 10), who earns nearly all of North's total. ``SUM(income) BY district`` is released
under a scope without the rule and its North row is the earner's income within 5 % (the attack, shown
by ``test_without_the_rule_the_sum_gives_the_top_earners_income``); with ``disclosure.dominance``
the North row is withheld with the rule that decided and South is still released.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from crypto.keyring import LocalKeyring
from executors.base import JobSpec, Limits, TableInput
from executors.local import LocalExecutor
from policies import Scope, prepare
from policies.examples import example_catalog, example_scope
from policies.model import Dominance
from sandbox_api.server.services.release import Released, TableResult, release
from sandbox_api.server.services.release_facts import ReleaseFacts
from tests.executors.executors_fixtures import store_version

EARNER = 900_000
QUERY = "SELECT district, SUM(income) AS total FROM citizens GROUP BY district"


def citizens() -> pa.Table:
    """North: the earner and 11 people on about 2,000; South: 28 people on about 3,000."""
    districts = ["North"] * 12 + ["South"] * 28
    incomes = [EARNER] + [2_000 + 13 * i for i in range(11)] + [3_000 + 29 * i for i in range(28)]
    n = len(districts)
    return pa.table(
        {
            "person_id": pa.array(range(n), pa.int64()),
            "national_id": [f"N{i:06d}" for i in range(n)],
            "name": [f"Person {i}" for i in range(n)],
            "phone": [f"555-{i:04d}" for i in range(n)],
            "birth_date": [date(1960, 1, 1)] * n,
            "sex": ["F" if i % 2 else "M" for i in range(n)],
            "district": districts,
            "income": pa.array(incomes, pa.int64()),
            "diagnosis": ["J00"] * n,
        }
    )


@pytest.fixture(scope="module")
def table(data_root: Path, keyring: LocalKeyring) -> TableInput:
    stored = store_version(
        data_root / "dominance",
        keyring,
        {"citizens": citizens()},
        units={"citizens": "person_id"},
        n_parts=2,
        dataset="citizens",
    )
    return replace(stored.inputs["citizens"], unit="person_id")


def with_dominance(scope: Scope) -> Scope:
    return scope.model_copy(
        update={"disclosure": scope.disclosure.model_copy(update={"dominance": Dominance()})}
    )


def released(executor: LocalExecutor, table: TableInput, scope: Scope, *, job_id: str) -> Released:
    prepared = prepare(QUERY, scope, example_catalog())
    spec = JobSpec(job_id, prepared.sql, (table,), None, Limits(timeout_s=60, memory_mb=512, threads=1))
    result = executor.run(spec).to_pandas()
    assert not [c for c in result.columns if isinstance(result[c].iloc[0], dict)], (
        "no unit leaves the sandbox"
    )
    out = release(TableResult(result), scope=scope, facts=ReleaseFacts())
    assert isinstance(out, Released)
    return out


def north_totals(out: Released) -> list[float]:
    frame = pd.DataFrame(out.rows, columns=out.columns)
    return [float(v) for v in frame.loc[frame["district"] == "North", "total"]]


def test_without_the_rule_the_sum_gives_the_top_earners_income(
    local_executor: LocalExecutor, table: TableInput
) -> None:
    """The attack, on a scope without ``disclosure.dominance``: it works (this is what the rule closes)."""
    out = released(local_executor, table, example_scope(), job_id="dominance-off")
    assert any(abs(total - EARNER) / EARNER < 0.05 for total in north_totals(out))


def test_with_the_rule_the_dominated_row_is_withheld_with_its_reason(
    local_executor: LocalExecutor, table: TableInput
) -> None:
    out = released(local_executor, table, with_dominance(example_scope()), job_id="dominance-on")
    assert not any(abs(total - EARNER) / EARNER < 0.5 for total in north_totals(out))
    frame = pd.DataFrame(out.rows, columns=out.columns)
    assert frame["district"].tolist() == ["South"]
    reasons = [r for r in out.report.reasons if "dominance rule" in r]
    assert len(reasons) == 1
    assert "widen the group" in reasons[0]
    assert str(EARNER) not in " ".join(out.report.reasons)
