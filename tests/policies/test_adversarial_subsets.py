"""Suppression-pattern oracles: FILTER cells, CASE buckets and complements.

When a row is withheld because a FILTER subset (or its complement within the row) has 1..k-1 people,
*which* row is withheld answers a question about those people: ``COUNT(*) FILTER (WHERE sex <> 'X')``
drops exactly the district the one person of sex 'X' lives in. CASE buckets over plain columns count
a handful of people's rows outright. Each attack runs in two worlds that differ only in one person's
fact, and everything the operator receives must be equal. Unless marked otherwise, each succeeded
against the engine that withheld the row (or released the bucket); the CASE-bucket forms over group
columns were refused then and are allowed now, so they guard the new allowance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd
import pytest

from tests.policies.adversarial_fixture import RARE_DIAGNOSIS, TINY_DISTRICT, build_fixture
from tests.policies.test_adversarial_ordering import without_rare_diagnosis, x_is_f
from tests.policies.worlds import assert_worlds_agree, operator_view

FX = build_fixture()
ISLE = FX.citizens[FX.citizens["district"] == TINY_DISTRICT]
HEAVY_USER = str(ISLE.iloc[0]["person_id"])  # 300 visits to the Isle Clinic


def heavy_user_one_visit_less() -> Mapping[str, pd.DataFrame]:
    """The world in which the heavy user of the Isle Clinic made one visit less."""
    visits = FX.visits
    drop = visits.index[visits["person_id"] == HEAVY_USER][0]
    return {"citizens": FX.citizens, "visits": visits.drop(index=drop)}


def heavy_user_elsewhere() -> Mapping[str, pd.DataFrame]:
    """The world in which the heavy user made their visits at another clinic."""
    visits = FX.visits.copy()
    visits.loc[visits["person_id"] == HEAVY_USER, "facility"] = "Harbor Clinic"
    return {"citizens": FX.citizens, "visits": visits}


WORLDS: Mapping[str, Callable[[], Mapping[str, pd.DataFrame]]] = {
    "x_is_f": x_is_f,
    "without_rare_diagnosis": without_rare_diagnosis,
    "heavy_user_one_visit_less": heavy_user_one_visit_less,
    "heavy_user_elsewhere": heavy_user_elsewhere,
}


@dataclass(frozen=True)
class WorldAttack:
    id: str
    fact: str
    sql: str
    world: str
    released: bool = True  # the query must run (False: a refusal in both worlds is the right answer)


_JOIN = "FROM citizens c JOIN visits v ON c.person_id = v.person_id"
_X = "which district the person of sex 'X' lives in"
_RARE = "whether P has the rare diagnosis"
_ISLE = "how often the heavy user visited the Isle Clinic"
_ISLE_SEX = "whether the heavy user (sex F) used the Isle Clinic"

ATTACKS = [
    WorldAttack(
        "complement_of_one_drops_their_row",
        _X,
        "SELECT district, COUNT(*) FILTER (WHERE sex <> 'X') AS n FROM citizens GROUP BY district",
        "x_is_f",
    ),
    WorldAttack(
        "sum_minus_filtered_sum_of_everyone_else",
        _X + " and their income",
        "SELECT district, SUM(income) - SUM(income) FILTER (WHERE sex <> 'X') AS x FROM citizens "
        "GROUP BY district",
        "x_is_f",
    ),
    WorldAttack(
        "sum_minus_filtered_sum_not_one_person",
        _X + " and their income",
        "SELECT district, SUM(income) - SUM(income) FILTER (WHERE NOT (district = 'Central' AND sex = 'X')) "
        "AS x FROM citizens GROUP BY district",
        "x_is_f",
    ),
    WorldAttack(
        "subset_of_one_drops_their_row",
        _X,
        "SELECT district, COUNT(*) FILTER (WHERE sex = 'X') AS n FROM citizens GROUP BY district",
        "x_is_f",
    ),
    WorldAttack(
        "filtered_sum_of_one",
        _X + " and their income",
        "SELECT district, COUNT(*) AS n, SUM(income) FILTER (WHERE sex = 'X') AS s FROM citizens "
        "GROUP BY district",
        "x_is_f",
    ),
    WorldAttack(
        "filtered_average_over_a_complement",
        _X + " and their income",
        "SELECT district, AVG(income) - AVG(income) FILTER (WHERE sex IN ('F', 'M')) AS d FROM citizens "
        "GROUP BY district",
        "x_is_f",
    ),
    WorldAttack(
        "rare_diagnosis_subset_in_a_join",
        _RARE,
        f"SELECT c.district, COUNT(DISTINCT c.person_id) FILTER (WHERE v.diagnosis = '{RARE_DIAGNOSIS}') "
        f"AS n {_JOIN} GROUP BY c.district",
        "without_rare_diagnosis",
    ),
    WorldAttack(
        "rare_diagnosis_complement_in_a_join",
        _RARE,
        f"SELECT c.district, COUNT(*) FILTER (WHERE v.diagnosis <> '{RARE_DIAGNOSIS}') AS n {_JOIN} "
        "GROUP BY c.district",
        "without_rare_diagnosis",
    ),
    WorldAttack(
        "union_branch_with_complement_of_one",
        _X,
        "SELECT 'rest' AS k, COUNT(*) FILTER (WHERE sex <> 'X') AS n FROM citizens "
        "WHERE district = 'Central' "
        "UNION ALL SELECT 'all', COUNT(*) FROM citizens WHERE district = 'Central'",
        "x_is_f",
    ),
    WorldAttack(
        "cte_complement_of_one",
        _X,
        "WITH t AS (SELECT district AS d, sex AS s, person_id AS p FROM citizens) "
        "SELECT d, COUNT(DISTINCT p) FILTER (WHERE s <> 'X') AS n FROM t GROUP BY d",
        "x_is_f",
    ),
    WorldAttack(
        "case_bucket_rate_of_one",
        _X + " (refused before)",
        "SELECT district, AVG(CASE WHEN sex = 'X' THEN 1.0 ELSE 0.0 END) AS rate FROM citizens "
        "GROUP BY district",
        "x_is_f",
    ),
    WorldAttack(
        "case_bucket_sum_of_one",
        _X + " and their income (refused before)",
        "SELECT district, SUM(CASE WHEN sex = 'X' THEN income ELSE 0 END) AS s FROM citizens "
        "GROUP BY district",
        "x_is_f",
    ),
    WorldAttack(
        "if_bucket_complement",
        _X + " (refused before)",
        "SELECT district, SUM(IF(sex <> 'X', 1, 0)) AS n FROM citizens GROUP BY district",
        "x_is_f",
    ),
    WorldAttack(
        "case_bucket_on_a_plain_column_counts_two_people",
        _ISLE,
        f"SELECT c.sex, COUNT(CASE WHEN v.facility = 'Isle Clinic' THEN 1 END) AS n {_JOIN} GROUP BY c.sex",
        "heavy_user_one_visit_less",
    ),
    WorldAttack(
        "if_bucket_on_a_plain_column_counts_two_people",
        _ISLE,
        f"SELECT c.sex, SUM(IF(v.facility = 'Isle Clinic', 1, 0)) AS n {_JOIN} GROUP BY c.sex",
        "heavy_user_one_visit_less",
    ),
    WorldAttack(
        "case_bucket_in_order_by",
        _ISLE_SEX,
        f"SELECT c.sex, COUNT(DISTINCT c.person_id) AS n {_JOIN} GROUP BY c.sex "
        "ORDER BY COUNT(CASE WHEN v.facility = 'Isle Clinic' THEN 1 END) DESC, c.sex DESC LIMIT 1",
        "heavy_user_elsewhere",
    ),
    WorldAttack(
        "case_bucket_in_having",
        _ISLE_SEX,
        f"SELECT c.sex, COUNT(DISTINCT c.person_id) AS n {_JOIN} GROUP BY c.sex "
        "HAVING COUNT(CASE WHEN v.facility = 'Isle Clinic' THEN 1 END) > 100 OR c.sex = 'X'",
        "heavy_user_elsewhere",
        released=False,
    ),
    WorldAttack(
        "case_bucket_on_a_plain_column_laundered_through_a_cte",
        _ISLE,
        "WITH t AS (SELECT v.person_id AS p, CASE WHEN v.facility = 'Isle Clinic' THEN 1 ELSE 0 END AS isle "
        "FROM visits v) SELECT c.sex, SUM(t.isle) AS n FROM citizens c JOIN t ON c.person_id = t.p "
        "GROUP BY c.sex",
        "heavy_user_one_visit_less",
        released=False,
    ),
    WorldAttack(
        "case_bucket_on_a_plain_column_inside_arithmetic",
        _ISLE,
        f"SELECT c.sex, SUM(2 * CASE WHEN v.facility = 'Isle Clinic' THEN 1 ELSE 0 END) AS n {_JOIN} "
        "GROUP BY c.sex",
        "heavy_user_one_visit_less",
        released=False,
    ),
    WorldAttack(
        "filter_on_a_plain_column_counts_two_people",
        _ISLE,
        f"SELECT c.sex, COUNT(*) FILTER (WHERE v.facility = 'Isle Clinic') AS n {_JOIN} GROUP BY c.sex",
        "heavy_user_one_visit_less",
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.id)
def test_world_attack(attack: WorldAttack) -> None:
    real = operator_view(attack.sql)
    if attack.released:
        assert real[0] == "released", f"the attack query should run: {real}"
    assert_worlds_agree(real, operator_view(attack.sql, frames=WORLDS[attack.world]()), attack.fact)


def test_case_ids_are_unique() -> None:
    assert len({a.id for a in ATTACKS}) == len(ATTACKS)
