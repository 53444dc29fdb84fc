"""Ordering and limit oracles (issue: suppression must happen inside the query).

Each attack asks a question about one person by letting a group below k take part in ORDER BY, LIMIT,
OFFSET or the row cap: the small group fills a place and is then withheld, so the number, choice or
order of the released rows answers the question. Each is run in two worlds that differ only in that
person (or asks both answers of a threshold), and everything the operator receives must be equal.
All of these succeeded against the engine that dropped small rows only after the query had run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
import pytest

from tests.policies.adversarial_fixture import RARE_DIAGNOSIS, build_fixture
from tests.policies.worlds import assert_worlds_agree, operator_view, scope_with

FX = build_fixture()
#: The one person with RARE_DIAGNOSIS (in 'Central'), and the one person of sex 'X' (also 'Central').
RARE_PID = str(FX.visits.loc[FX.visits["diagnosis"] == RARE_DIAGNOSIS, "person_id"].iloc[0])
X_INCOME = 73_219.4317


def without_rare_diagnosis() -> Mapping[str, pd.DataFrame]:
    """The world in which that person never had the rare diagnosis."""
    visits = FX.visits.copy()
    visits.loc[visits["diagnosis"] == RARE_DIAGNOSIS, "diagnosis"] = "I10"
    return {"citizens": FX.citizens, "visits": visits}


def x_is_f() -> Mapping[str, pd.DataFrame]:
    """The world in which the one person of sex 'X' is recorded as 'F'."""
    citizens = FX.citizens.copy()
    citizens.loc[citizens["sex"] == "X", "sex"] = "F"
    return {"citizens": citizens, "visits": FX.visits}


def without_x() -> Mapping[str, pd.DataFrame]:
    """The world in which the one person of sex 'X' is not in the data at all."""
    return {"citizens": FX.citizens[FX.citizens["sex"] != "X"], "visits": FX.visits}


@dataclass(frozen=True)
class DatasetAttack:
    """The same query on the real data and on ``other()``, the world without the fact."""

    id: str
    fact: str
    sql: str
    other: str  # name of the world builder above
    max_rows: int | None = None


@dataclass(frozen=True)
class ThresholdAttack:
    """The same query with two thresholds; the fact is that the person's value lies between them."""

    id: str
    fact: str
    template: str
    low: float
    high: float


_RARE = f"v.diagnosis = '{RARE_DIAGNOSIS}'"
_JOIN = "FROM citizens c JOIN visits v ON c.person_id = v.person_id"

DATASET_ATTACKS = [
    DatasetAttack(
        "small_group_sorts_first_and_fills_limit",
        "whether P has the rare diagnosis",
        f"SELECT c.district, COUNT(DISTINCT c.person_id) AS n {_JOIN} WHERE {_RARE} OR c.district = 'North' "
        "GROUP BY c.district ORDER BY n ASC LIMIT 1",
        "without_rare_diagnosis",
    ),
    DatasetAttack(
        "small_group_sorts_first_by_expression",
        "whether P has the rare diagnosis",
        f"SELECT c.district, COUNT(*) AS n {_JOIN} WHERE {_RARE} OR c.district = 'North' "
        "GROUP BY c.district ORDER BY COUNT(DISTINCT c.person_id) LIMIT 1",
        "without_rare_diagnosis",
    ),
    DatasetAttack(
        "limit_returns_fewer_rows",
        "whether P has the rare diagnosis (LIMIT 4 returning 3 rows)",
        f"SELECT c.district, COUNT(*) AS n {_JOIN} WHERE {_RARE} OR c.district IN ('North', 'Harbor', "
        "'Hills', 'Riverside') GROUP BY c.district ORDER BY c.district LIMIT 4",
        "without_rare_diagnosis",
    ),
    DatasetAttack(
        "offset_skips_a_small_group",
        "whether P has the rare diagnosis (OFFSET past a small group)",
        f"SELECT c.district, COUNT(*) AS n {_JOIN} WHERE {_RARE} OR c.district = 'North' "
        "GROUP BY c.district ORDER BY COUNT(DISTINCT c.person_id) LIMIT 1 OFFSET 1",
        "without_rare_diagnosis",
    ),
    DatasetAttack(
        "row_cap_runs_before_suppression",
        "whether P has the rare diagnosis (the cap's report)",
        f"SELECT c.district, COUNT(*) AS n {_JOIN} WHERE {_RARE} OR c.district IN ('North', 'Harbor', "
        "'Hills', 'Riverside') GROUP BY c.district ORDER BY c.district",
        "without_rare_diagnosis",
        max_rows=3,
    ),
    DatasetAttack(
        "cte_small_group_fills_limit",
        "whether P has the rare diagnosis (through a CTE)",
        f"WITH t AS (SELECT c.district AS d, c.person_id AS p {_JOIN} WHERE {_RARE} OR c.district = 'Hills') "
        "SELECT d, COUNT(DISTINCT p) AS n FROM t GROUP BY d ORDER BY n LIMIT 1",
        "without_rare_diagnosis",
    ),
    DatasetAttack(
        "union_branch_small_row_fills_limit",
        "whether someone of sex 'X' exists",
        "SELECT sex AS k, COUNT(*) AS n FROM citizens GROUP BY sex UNION ALL SELECT district, COUNT(*) "
        "FROM citizens WHERE district = 'North' GROUP BY district ORDER BY n ASC LIMIT 1",
        "x_is_f",
    ),
    DatasetAttack(
        "small_key_sorts_first",
        "whether the person of sex 'X' lives in Central",
        "SELECT district, sex, COUNT(*) AS n FROM citizens WHERE district = 'Central' "
        "GROUP BY district, sex ORDER BY n LIMIT 1",
        "x_is_f",
    ),
    DatasetAttack(
        "window_total_over_the_result",
        "whether someone of sex 'X' exists (a window total; refused before, allowed now over released rows)",
        "SELECT sex, COUNT(*) AS n, SUM(COUNT(*)) OVER () AS total, 100.0 * COUNT(*) / SUM(COUNT(*)) OVER () "
        "AS share FROM citizens GROUP BY sex ORDER BY sex",
        "without_x",
    ),
]

_BY_SEX = "SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex "
THRESHOLD_ATTACKS = [
    ThresholdAttack(
        "order_by_case_on_avg_binary_search",
        "a bracket around the income of the person of sex 'X'",
        _BY_SEX + "ORDER BY CASE WHEN COUNT(*) < 5 AND AVG(income) > {t} THEN 0 ELSE 1 END, n DESC LIMIT 1",
        73_000,
        74_000,
    ),
    ThresholdAttack(
        "order_by_case_on_sum_binary_search",
        "a bracket around the income of the person of sex 'X'",
        _BY_SEX + "ORDER BY CASE WHEN SUM(income) < {t} THEN 0 ELSE 1 END LIMIT 1",
        73_000,
        74_000,
    ),
    ThresholdAttack(
        "having_threshold_then_limit",
        "a bracket around the income of the person of sex 'X'",
        _BY_SEX + "HAVING AVG(income) > {t} OR COUNT(*) > 100 ORDER BY n LIMIT 1",
        73_000,
        74_000,
    ),
]


@pytest.mark.parametrize("attack", DATASET_ATTACKS, ids=lambda a: a.id)
def test_dataset_attack(attack: DatasetAttack) -> None:
    scope = scope_with(max_rows=str(attack.max_rows)) if attack.max_rows is not None else None
    worlds = {"without_rare_diagnosis": without_rare_diagnosis, "x_is_f": x_is_f, "without_x": without_x}
    other = worlds[attack.other]()
    real = operator_view(attack.sql, scope=scope)
    assert real[0] == "released", f"the attack query should run: {real}"
    assert_worlds_agree(real, operator_view(attack.sql, scope=scope, frames=other), attack.fact)


@pytest.mark.parametrize("attack", THRESHOLD_ATTACKS, ids=lambda a: a.id)
def test_threshold_attack(attack: ThresholdAttack) -> None:
    assert attack.low < X_INCOME < attack.high
    low = operator_view(attack.template.format(t=attack.low))
    assert low[0] == "released", f"the attack query should run: {low}"
    assert_worlds_agree(low, operator_view(attack.template.format(t=attack.high)), attack.fact)


def test_case_ids_are_unique() -> None:
    ids = [a.id for a in DATASET_ATTACKS] + [a.id for a in THRESHOLD_ATTACKS]
    assert len(ids) == len(set(ids))
