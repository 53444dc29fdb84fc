"""Property: no released output depends on whether a group below k exists.

Hypothesis draws a small citizens table and an allowed aggregate query with ORDER BY, LIMIT and
OFFSET. The released rows must equal an independent pandas computation of "every group of at least k
people, then ordered, then offset and limited", and everything the operator receives must be the same
when a group of 1..k-1 more people (of a district and a sex of their own) is added to the data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.policies.adversarial_fixture import MIN_UNITS, build_fixture
from tests.policies.worlds import operator_view

DISTRICTS = ("Alpha", "Beta", "Gamma", "Delta")
AGGREGATES = {
    "n": ("COUNT(*)", lambda g: float(len(g))),
    "u": ("COUNT(DISTINCT person_id)", lambda g: float(g["person_id"].nunique())),
    "s": ("SUM(income)", lambda g: float(g["income"].sum())),
    "a": ("AVG(income)", lambda g: float(g["income"].mean())),
}


@dataclass(frozen=True)
class Case:
    sizes: dict[tuple[str, str], int]  # people per (district, sex)
    keys: tuple[str, ...]
    aggregates: tuple[str, ...]
    order_by: str
    descending: bool
    limit: int
    offset: int
    extra: int  # people in the added small group

    @property
    def sql(self) -> str:
        select = [*self.keys, *(f"{AGGREGATES[a][0]} AS {a}" for a in self.aggregates)]
        direction = "DESC" if self.descending else "ASC"
        order = ", ".join([f"{self.order_by} {direction}", *self.keys])
        sql = f"SELECT {', '.join(select)} FROM citizens GROUP BY {', '.join(self.keys)} ORDER BY {order}"
        sql += f" LIMIT {self.limit}"
        return sql + (f" OFFSET {self.offset}" if self.offset else "")


@st.composite
def cases(draw: st.DrawFn) -> Case:
    sizes = {(d, s): draw(st.integers(min_value=0, max_value=9)) for d in DISTRICTS for s in ("F", "M")}
    keys = draw(st.sampled_from([("district",), ("sex",), ("district", "sex")]))
    aggregates = tuple(
        draw(st.lists(st.sampled_from(sorted(AGGREGATES)), min_size=1, max_size=3, unique=True))
    )
    return Case(
        sizes=sizes,
        keys=keys,
        aggregates=aggregates,
        order_by=draw(st.sampled_from([*aggregates, *keys])),
        descending=draw(st.booleans()),
        limit=draw(st.integers(min_value=1, max_value=5)),
        offset=draw(st.integers(min_value=0, max_value=2)),
        extra=draw(st.integers(min_value=1, max_value=MIN_UNITS - 1)),
    )


def _citizens(sizes: dict[tuple[str, str], int], start: int = 0) -> pd.DataFrame:
    template = build_fixture().citizens.iloc[0]
    rows = []
    i = start
    for (district, sex), count in sizes.items():
        for _ in range(count):
            row = template.to_dict()
            row.update(
                person_id=f"Q{i:07d}",
                district=district,
                sex=sex,
                income=1000.0 + 137.0 * (i % 23) + 0.0007 * i,
                birth_date=dt.date(1970, 5, 17),
            )
            rows.append(row)
            i += 1
    return pd.DataFrame(rows, columns=build_fixture().citizens.columns)


def _expected(case: Case, citizens: pd.DataFrame) -> list[tuple[object, ...]]:
    rows = []
    for key, group in citizens.groupby(list(case.keys)):
        if group["person_id"].nunique() < MIN_UNITS:
            continue
        values = key if isinstance(key, tuple) else (key,)
        rows.append((*values, *(AGGREGATES[a][1](group) for a in case.aggregates)))
    columns = [*case.keys, *case.aggregates]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.sort_values(
        [case.order_by, *case.keys], ascending=[not case.descending] + [True] * len(case.keys), kind="stable"
    )
    return list(frame.itertuples(index=False, name=None))[case.offset : case.offset + case.limit]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_released_rows_are_the_large_groups_ordered_then_limited(case: Case) -> None:
    citizens = _citizens(case.sizes)
    visits = build_fixture().visits.iloc[0:0]
    real = operator_view(case.sql, frames={"citizens": citizens, "visits": visits})
    assert real[0] == "released", real
    released = list(real[2])
    expected = _expected(case, citizens)
    assert len(released) == len(expected), (case.sql, released, expected)
    for got, want in zip(released, expected, strict=True):
        assert got[: len(case.keys)] == want[: len(case.keys)], (case.sql, released, expected)
        assert got[len(case.keys) :] == pytest.approx(want[len(case.keys) :], rel=1e-9)
    # 1..k-1 more people of a district and a sex of their own: a group below k under every key.
    more = pd.concat([citizens, _citizens({("Omega", "X"): case.extra}, start=10_000)], ignore_index=True)
    other = operator_view(case.sql, frames={"citizens": more, "visits": visits})
    assert real == other, f"a group below k changed what the operator receives: {case.sql}"
