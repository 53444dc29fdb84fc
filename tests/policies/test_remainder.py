"""``suppression: remainder``: the groups below k come back merged into one row, computed inside the
query (exact over the merged rows), ordered and limited with the released rows, and never standing
for a single small group."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.policies.adversarial_fixture import MIN_UNITS, build_fixture, citizens_seen
from tests.policies.worlds import assert_worlds_agree, operator_view, scope_with

FX = build_fixture()
REMAINDER = scope_with(suppression="remainder")


def _groups() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The visible citizens of districts with at least k people, and those of the smaller ones."""
    seen = citizens_seen(FX)
    sizes = seen.groupby("district")["person_id"].nunique()
    small = seen["district"].isin(sizes[sizes < MIN_UNITS].index)
    return seen[~small], seen[small]


def test_the_remainder_is_exact_over_the_merged_rows_and_ordered_with_the_rest() -> None:
    sql = (
        "SELECT district, COUNT(*) AS n, SUM(income) AS s, AVG(income) AS a FROM citizens "
        "GROUP BY district ORDER BY n, district LIMIT 3"
    )
    view = operator_view(sql, scope=REMAINDER)
    large, small = _groups()
    assert small["district"].nunique() >= 2
    merged = (None, len(small), small["income"].sum(), small["income"].mean())
    rows = [(d, len(g), g["income"].sum(), g["income"].mean()) for d, g in large.groupby("district")]
    expected = sorted([*rows, merged], key=lambda r: (r[1], r[0] or ""))[:3]
    assert len(view[2]) == 3
    for got, want in zip(view[2], expected, strict=True):
        assert got[:2] == want[:2]
        assert got[2:] == pytest.approx(want[2:], rel=1e-9)
    assert any("remainder row" in reason for reason in dict(view[3])["reasons"])


def test_one_small_group_alone_is_never_a_remainder() -> None:
    """What 'Small Town' (four people) earns, from a remainder that would hold nothing else."""
    sql = (
        "SELECT district, COUNT(*) AS n, SUM(income) AS s FROM citizens WHERE district <> 'Lonely Isle' "
        "GROUP BY district"
    )
    rows = operator_view(sql, scope=REMAINDER)[2]
    assert all(row[0] is not None for row in rows)
    assert len(rows) == 5


def test_the_person_of_sex_x_is_not_a_remainder() -> None:
    """Attack: GROUP BY sex, where 'X' is one person; a remainder of one group would be them."""
    sql = "SELECT sex, COUNT(*) AS n, SUM(income) AS s FROM citizens WHERE district = 'Central' GROUP BY sex"
    real = operator_view(sql, scope=REMAINDER)
    assert real[0] == "released"
    assert sorted(row[0] for row in real[2]) == ["F", "M"]
    without_x = operator_view(sql.replace("GROUP BY sex", "AND sex <> 'X' GROUP BY sex"), scope=REMAINDER)
    assert_worlds_agree(real, without_x, "the income of the person of sex 'X'")


def test_a_having_over_a_small_group_does_not_decide_whether_it_is_merged() -> None:
    """Attack: HAVING AVG(income) > t over the small groups, for two thresholds around one person's
    income: the remainder must merge the same groups either way."""
    template = (
        "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district "
        "HAVING AVG(income) > {t} OR COUNT(*) > 20 ORDER BY n"
    )
    low = operator_view(template.format(t=10), scope=REMAINDER)
    high = operator_view(template.format(t=10_000_000), scope=REMAINDER)
    assert_worlds_agree(low, high, "whether the small districts' average income exceeds a threshold")
