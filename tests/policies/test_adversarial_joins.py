"""Top-n aggregates and joins on attributes.

``MAX(x, n)`` / ``MIN(x, n)`` return the n largest or smallest values themselves, so a scope that
grants MAX releases the second- and third-highest incomes. A self-join on a group column (``ON b.sex =
c.sex``) weights every row by the size of its group, so a district's count says whether the one person
of sex 'X' lives there; an inequality join ranks people against each other. Each attack runs in two
worlds that differ in one person; everything the operator receives must be equal (a refusal in both
worlds is equal). Each succeeded against the engine before these rules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd
import pytest

import policies
from tests.policies.adversarial_fixture import build_catalog, build_fixture, check
from tests.policies.test_adversarial_ordering import x_is_f
from tests.policies.worlds import assert_worlds_agree, operator_view, scope_with

FX = build_fixture()
_CENTRAL = FX.citizens[FX.citizens["district"] == "Central"].sort_values("income", ascending=False)
SECOND_RICHEST = str(_CENTRAL.iloc[1]["person_id"])
SECOND_POOREST = str(_CENTRAL.dropna(subset=["income"]).iloc[-2]["person_id"])


def _income_changed(pid: str) -> Callable[[], Mapping[str, pd.DataFrame]]:
    def _world() -> Mapping[str, pd.DataFrame]:
        citizens = FX.citizens.copy()
        citizens.loc[citizens["person_id"] == pid, "income"] += 1.1111
        return {"citizens": citizens, "visits": FX.visits}

    return _world


def x_born_ten_years_later() -> Mapping[str, pd.DataFrame]:
    citizens = FX.citizens.copy()
    row = citizens["sex"] == "X"
    citizens.loc[row, "birth_date"] = citizens.loc[row, "birth_date"].map(
        lambda d: dt.date(d.year + 10, d.month, d.day)
    )
    return {"citizens": citizens, "visits": FX.visits}


MAX_SCOPE = {"income": "{use: aggregate, functions: [sum, avg, count, max, min], bounds: [0, 1000000]}"}


@dataclass(frozen=True)
class Attack:
    id: str
    fact: str
    sql: str
    world: Callable[[], Mapping[str, pd.DataFrame]]
    rule: str
    scope: Mapping[str, str] | None = None


_INCOME_2 = "the second-highest income in Central"
ATTACKS = [
    Attack(
        "max_top_n_list",
        _INCOME_2,
        "SELECT district, MAX(income, 3) AS top FROM citizens GROUP BY district",
        _income_changed(SECOND_RICHEST),
        "aggregate_arguments",
        MAX_SCOPE,
    ),
    Attack(
        "min_top_n_list",
        "the second-lowest income in Central",
        "SELECT district, MIN(income, 2) AS low FROM citizens GROUP BY district",
        _income_changed(SECOND_POOREST),
        "aggregate_arguments",
        MAX_SCOPE,
    ),
    Attack(
        "self_join_on_a_group_column",
        "which district the person of sex 'X' lives in",
        "SELECT b.district, COUNT(*) AS n FROM citizens b JOIN citizens c ON b.sex = c.sex "
        "GROUP BY b.district",
        x_is_f,
        "join_condition",
    ),
    Attack(
        "self_join_on_key_and_attribute_mismatch",
        "which district the person of sex 'X' lives in",
        "SELECT b.district, COUNT(*) AS n FROM citizens b JOIN citizens c ON b.district = c.district "
        "AND b.sex <> c.sex GROUP BY b.district",
        x_is_f,
        "join_condition",
    ),
    Attack(
        "inequality_join_ranks_people",
        "the birth year of the person of sex 'X'",
        "SELECT b.district, COUNT(*) AS n FROM citizens b JOIN citizens c ON b.birth_date < c.birth_date "
        "GROUP BY b.district",
        x_born_ten_years_later,
        "join_condition",
    ),
    Attack(
        "left_join_on_a_group_column",
        "which district the person of sex 'X' lives in",
        "SELECT b.district, COUNT(c.district) AS n FROM citizens b LEFT JOIN citizens c ON b.sex = c.sex "
        "GROUP BY b.district",
        x_is_f,
        "join_condition",
    ),
    Attack(
        "join_through_a_cte_on_a_group_column",
        "which district the person of sex 'X' lives in",
        "WITH s AS (SELECT sex AS s, person_id AS p FROM citizens) SELECT b.district, COUNT(*) AS n "
        "FROM citizens b JOIN s ON b.sex = s.s GROUP BY b.district",
        x_is_f,
        "join_condition",
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.id)
def test_attack(attack: Attack) -> None:
    scope = scope_with(**attack.scope) if attack.scope is not None else None
    real = operator_view(attack.sql, scope=scope)
    assert_worlds_agree(real, operator_view(attack.sql, scope=scope, frames=attack.world()), attack.fact)
    assert real[0] == "refused"
    assert attack.rule in {rule for rule, _ in real[1]}


def test_case_ids_are_unique() -> None:
    assert len({a.id for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT v.facility, COUNT(*) AS n FROM visits v JOIN visits w ON v.facility = w.facility GROUP BY 1",
        "SELECT c.district, COUNT(*) AS n FROM citizens c JOIN visits v ON c.person_id = v.person_id "
        "AND v.diagnosis <> 'I10' WHERE c.district = 'North' OR v.diagnosis = 'J10.1' GROUP BY 1",
    ],
)
def test_joins_on_keys_and_public_dimensions_stay_allowed(sql: str) -> None:
    assert check(sql).allowed, check(sql).findings


def test_the_join_refusal_names_what_is_allowed() -> None:
    report = policies.check(
        "SELECT b.district, COUNT(*) FROM citizens b JOIN citizens c ON b.sex = c.sex GROUP BY 1",
        scope_with(),
        build_catalog(),
    )
    messages = [f.message for f in report.findings if f.rule == "join_condition"]
    assert messages
    assert all("join keys" in m and "public" in m for m in messages)


def test_comparisons_of_one_persons_own_rows_stay_allowed() -> None:
    """After a join on the privacy unit both sides are the same person: comparing them links nobody."""
    report = check(
        "SELECT c.district, COUNT(*) AS n FROM citizens c JOIN visits v ON c.person_id = v.person_id "
        "WHERE v.visit_date > c.birth_date GROUP BY 1"
    )
    assert report.allowed, report.findings


def test_comparisons_across_a_public_dimension_link_are_refused() -> None:
    """Joined on a public facility code, the two sides are different people: comparing them is not a
    filter on one person."""
    report = check(
        "SELECT b.district, COUNT(*) AS n FROM visits a JOIN visits w ON a.facility = w.facility "
        "JOIN citizens b ON b.person_id = a.person_id WHERE w.visit_date < a.visit_date GROUP BY 1"
    )
    assert "join_condition" in {f.rule for f in report.findings}
