"""Property-based attacks: hypothesis composes queries over the fixture schema from allowed and forbidden
parts (columns, aggregates, group keys, predicates, joins). Whenever the engine allows one, its
rewritten SQL is executed and the released table must hold no protected value, and every row must
stand for at least k people according to an oracle computed with pandas from the same parts.
``check()`` must never raise, whatever the text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policies
from tests.policies.adversarial_fixture import (
    HIDDEN_DISTRICT,
    RARE_DIAGNOSIS,
    TINY_DISTRICT,
    assert_released_safely,
    build_fixture,
    check,
    citizens_seen,
    joined_seen,
    units_by,
    visits_seen,
)

FX = build_fixture()
PID = FX.citizens.iloc[0]["person_id"]

Frame = pd.DataFrame
Derive = Callable[[Frame], Any]


@dataclass(frozen=True)
class Part:
    """A fragment of SQL over one table (``c`` = citizens, ``v`` = visits) and its pandas meaning."""

    table: str
    sql: str
    pandas: Derive
    forbidden: bool = False


def _col(name: str) -> Derive:
    return lambda d: d[name]


def _year(name: str) -> Derive:
    return lambda d: d[name].map(lambda v: v.year)


def _month(name: str) -> Derive:
    return lambda d: d[name].map(lambda v: v.month)


GROUP_KEYS: tuple[Part, ...] = (
    Part("c", "{c}district", _col("district")),
    Part("c", "{c}sex", _col("sex")),
    Part("c", "{c}birth_date", _col("birth_date")),
    Part("c", "year({c}birth_date)", _year("birth_date")),
    Part("c", "{c}phone", _col("phone")),
    Part("c", "{c}postcode", _col("postcode")),
    Part("c", "{c}household_id", _col("household_id")),
    Part("v", "{v}facility", _col("facility")),
    Part("v", "{v}visit_date", _col("visit_date")),
    Part("v", "month({v}visit_date)", _month("visit_date")),
    # forbidden keys: the engine must refuse these, and if it does not, the output must still be safe
    Part("c", "{c}national_id", _col("national_id"), forbidden=True),
    Part("c", "{c}name", _col("name"), forbidden=True),
    Part("c", "{c}person_id", _col("person_id"), forbidden=True),
    Part("c", "{c}income", _col("income"), forbidden=True),
    Part("c", "{c}email", _col("email"), forbidden=True),
    Part("v", "{v}diagnosis", _col("diagnosis"), forbidden=True),
    Part("v", "{v}cost", _col("cost"), forbidden=True),
    Part("v", "{v}visit_id", _col("visit_id"), forbidden=True),
)

#: (table, SQL, forbidden). The conditional sums compute a cell from one person inside a large group.
AGGREGATES: tuple[tuple[str, str, bool], ...] = (
    ("c", "COUNT(DISTINCT {c}person_id)", False),
    ("c", "COUNT(*)", False),
    ("c", "SUM({c}income)", False),
    ("c", "AVG({c}income)", False),
    ("c", "COUNT({c}income)", False),
    ("v", "SUM({v}cost)", False),
    ("v", "AVG({v}cost)", False),
    ("c", "SUM({c}income) FILTER (WHERE {c}sex = 'X')", False),
    ("c", "SUM(CASE WHEN {c}sex = 'X' THEN {c}income ELSE 0 END)", True),
    ("c", "MIN({c}income)", True),
    ("v", "MAX({v}cost)", True),
    ("c", "MEDIAN({c}income)", True),
    ("c", "LIST({c}name)", True),
    ("c", "ANY_VALUE({c}national_id)", True),
    ("c", "STRING_AGG({c}phone, ',')", True),
    ("c", "MAX({c}birth_date)", True),
    ("c", "COUNT(DISTINCT {c}national_id)", True),
    ("v", "MODE({v}diagnosis)", True),
    ("v", "ARG_MAX({v}visit_id, {v}cost)", True),
)

PREDICATES: tuple[Part, ...] = (
    Part("c", "{c}sex = 'F'", lambda d: d["sex"] == "F"),
    Part(
        "c",
        f"{{c}}district IN ('Central', '{TINY_DISTRICT}', 'Small Town')",
        lambda d: d["district"].isin(["Central", TINY_DISTRICT, "Small Town"]),
    ),
    Part("c", f"{{c}}district = '{HIDDEN_DISTRICT}'", lambda d: d["district"] == HIDDEN_DISTRICT),
    Part("c", "year({c}birth_date) >= 1980", lambda d: d["birth_date"].map(lambda v: v.year) >= 1980),
    Part("v", f"{{v}}diagnosis = '{RARE_DIAGNOSIS}'", lambda d: d["diagnosis"] == RARE_DIAGNOSIS),
    Part("v", "{v}diagnosis LIKE 'J%'", lambda d: d["diagnosis"].str.startswith("J")),
    Part("v", "{v}facility = 'Telehealth'", lambda d: d["facility"] == "Telehealth"),
    # forbidden
    Part("c", "{c}income > 100000", lambda d: d["income"] > 100_000, forbidden=True),
    Part("c", "{c}name LIKE 'A%'", lambda d: d["name"].str.startswith("A"), forbidden=True),
    Part("c", f"{{c}}person_id = '{PID}'", lambda d: d["person_id"] == PID, forbidden=True),
    Part("c", "{c}national_id LIKE '1%'", lambda d: d["national_id"].str.startswith("1"), forbidden=True),
    Part("v", "{v}cost > 1000", lambda d: d["cost"] > 1000, forbidden=True),
)


@dataclass(frozen=True)
class Generated:
    sql: str
    keys: tuple[Part, ...]
    predicates: tuple[Part, ...]
    joined: bool
    only: str  # "c" or "v" when one table is read

    def frame(self) -> Frame:
        if self.joined:
            return joined_seen(FX)
        return citizens_seen(FX) if self.only == "c" else visits_seen(FX)

    def oracle(self) -> dict[tuple[Any, ...], int]:
        data = self.frame().copy()
        for pred in self.predicates:
            data = data[pred.pandas(data)]
        names = []
        for i, key in enumerate(self.keys):
            data[f"k{i}"] = key.pandas(data) if len(data) else pd.Series(dtype=object)
            names.append(f"k{i}")
        return dict(units_by(data, names))


@st.composite
def queries(draw: st.DrawFn) -> Generated:
    joined = draw(st.booleans())
    only = "c" if joined else draw(st.sampled_from(["c", "v"]))
    usable = {"c", "v"} if joined else {only}
    prefix = {"c": "c." if joined else "", "v": "v." if joined else ""}

    def fill(text: str) -> str:
        return text.format(c=prefix["c"], v=prefix["v"])

    # One query in four may use forbidden parts; the rest stay within the scope so that most examples are
    # allowed and their released output is actually checked.
    hostile = draw(st.integers(min_value=0, max_value=3)) == 0

    def pick_parts(options: tuple[Part, ...], most: int) -> tuple[Part, ...]:
        allowed = [p for p in options if p.table in usable and (hostile or not p.forbidden)]
        return tuple(draw(st.lists(st.sampled_from(allowed), max_size=most, unique_by=lambda p: p.sql)))

    keys = pick_parts(GROUP_KEYS, 3)
    predicates = pick_parts(PREDICATES, 2)
    aggregate_options = [a for a in AGGREGATES if a[0] in usable and (hostile or not a[2])]
    aggregates = draw(st.lists(st.sampled_from(aggregate_options), min_size=1, max_size=3, unique=True))
    select = [f"{fill(k.sql)} AS k{i}" for i, k in enumerate(keys)]
    select += [f"{fill(a[1])} AS a{i}" for i, a in enumerate(aggregates)]
    source = (
        "citizens c JOIN visits v ON c.person_id = v.person_id"
        if joined
        else ("citizens" if only == "c" else "visits")
    )
    sql = f"SELECT {', '.join(select)} FROM {source}"
    if predicates:
        sql += " WHERE " + " AND ".join(f"({fill(p.sql)})" for p in predicates)
    if keys:
        sql += " GROUP BY " + ", ".join(fill(k.sql) for k in keys)
    if draw(st.booleans()):
        sql += " ORDER BY " + draw(st.sampled_from([f"a{i}" for i in range(len(aggregates))])) + " DESC"
    return Generated(sql=sql, keys=keys, predicates=predicates, joined=joined, only=only)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries())
def test_generated_queries_release_nothing_protected_and_nothing_below_k(query: Generated) -> None:
    report = check(query.sql)
    if not report.allowed:
        assert report.findings, "a refusal must carry findings"
        return
    assert_released_safely(
        query.sql,
        keys=[f"k{i}" for i in range(len(query.keys))],
        oracle=lambda _fx: query.oracle(),
    )


SQL_TOKENS = st.sampled_from(
    [
        "SELECT",
        "FROM",
        "WHERE",
        "GROUP BY",
        "HAVING",
        "ORDER BY",
        "LIMIT",
        "UNION ALL",
        "WITH",
        "AS",
        "JOIN",
        "ON",
        "(",
        ")",
        ",",
        ";",
        "*",
        "#1",
        "'",
        '"',
        "--",
        "/*",
        "*/",
        "citizens",
        "visits",
        "c",
        "c.*",
        "person_id",
        "national_id",
        "income",
        "district",
        "COUNT(DISTINCT person_id)",
        "SUM(income)",
        "MIN(",
        "OVER (",
        "FILTER (WHERE",
        "read_csv('x')",
        "query('",
        "sbx_keyed_hash(",
        "_sbx_units",
        "PRAGMA",
        "SET",
        "1",
        "NULL",
        "::INT",
        "->",
        "lambda",
        "$$",
        "\u0430",
        "\u200b",
        "\x00",
        "\\",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_check_never_raises_on_arbitrary_text(text: str) -> None:
    report = check(text)
    assert isinstance(report, policies.CheckReport)
    if not report.allowed:
        assert report.findings


@settings(max_examples=150, deadline=None)
@given(st.lists(SQL_TOKENS, max_size=30))
def test_check_never_raises_on_sql_like_token_soup(tokens: list[str]) -> None:
    report = check(" ".join(tokens))
    assert isinstance(report, policies.CheckReport)
    if not report.allowed:
        assert report.findings
