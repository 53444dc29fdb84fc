"""The differencing attacks of issue 10 (3 and 4) against the released-cohort ledger, end to end.

Each query goes through the real rewrite passes, then ``collect_cohorts`` (as the pipeline's last
step), the locked-down engine, the sandbox's sketching step and the output check; the ledger then
decides which checked rows are released. Each attack first shows what the operator would compute from
the rows released *without* the ledger (the attack works on the current release path), then that the
same fact cannot be computed from what the ledger lets through.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from executors.base import Limits
from executors.cohort_sketches import sketch_cohorts
from executors.engine import run_query
from policies import check_output
from policies.analysis.levels import Analysis
from policies.cohorts import CohortIndex, SketchRequest, decide, sums_for
from policies.cohorts.cells import cells_of
from policies.context import PolicyContext, build_context
from policies.examples import example_catalog, example_scope
from policies.passes import REWRITES
from policies.passes.collect_cohorts import collect_cohorts
from policies.pipeline import parse_and_qualify, postcondition_findings

K = 10
TARGET_INCOME = 73_117  # P0042's income: the fact the analyst wants
REQUEST = SketchRequest(secret=bytes(range(32)), power_sums=sums_for(K))


@pytest.fixture(scope="module")
def citizens() -> pa.Table:
    rng = np.random.default_rng(42)
    n = 2000
    district = np.where(np.arange(n) < 947, "Central", rng.choice(["North", "South", "East"], n))
    district[1990:1993] = "Islet"  # a small region: three people
    sex = rng.choice(["F", "M"], n)
    years = rng.integers(1940, 2005, n)
    district[42], sex[42], years[42] = "Harbour", "F", 1931  # P0042: the only woman born in 1931
    income = rng.integers(10_000, 90_000, n)
    income[42] = TARGET_INCOME
    return pa.Table.from_pandas(
        pd.DataFrame(
            {
                "person_id": np.arange(n, dtype=np.int64),
                "national_id": [f"N{i:06d}" for i in range(n)],
                "name": [f"Person {i}" for i in range(n)],
                "phone": [f"0170{i:07d}" for i in range(n)],
                "birth_date": [dt.date(int(y), 6, 15) for y in years],
                "sex": sex,
                "district": district,
                "income": income,
                "diagnosis": rng.choice(["J10", "I10", "E11"], n),
            }
        ),
        preserve_index=False,
    )


@pytest.fixture(scope="module")
def ctx() -> PolicyContext:
    return build_context(example_scope(), example_catalog())[0]


def prepared_sql(sql: str, ctx: PolicyContext) -> str:
    """The pipeline's preparation with ``collect_cohorts`` as its last step (after the re-check)."""
    tree, findings = parse_and_qualify(sql, ctx)
    assert tree is not None, findings
    analysis = Analysis(tree, ctx)
    for rewrite in REWRITES:
        tree = rewrite(tree, analysis, ctx)
    assert postcondition_findings(tree, analysis, ctx) == []
    tree = collect_cohorts(tree, analysis, ctx)
    return tree.sql(dialect="duckdb", comments=False)


def checked(sql: str, ctx: PolicyContext, citizens: pa.Table) -> pd.DataFrame:
    """What the sandbox returns, then the output check (rows below k dropped), sketches kept."""
    raw = run_query(prepared_sql(sql, ctx), {"citizens": citizens}, keyed_hash_key=None, limits=Limits())
    result = sketch_cohorts(raw, REQUEST).to_pandas()
    assert not [c for c in result.columns if c.startswith("_sbx_cohort")], "unit lists left the sandbox"
    units = result[[c for c in result.columns if c.startswith("_sbx_units")]].min(axis=1)
    kept = result[units >= K].reset_index(drop=True)
    # The same rows as the output check keeps (this attack is about rows that pass it).
    assert len(check_output(result, example_scope().disclosure).table) == len(kept)
    return kept


def released(frame: pd.DataFrame, index: CohortIndex) -> pd.DataFrame:
    """The rows the ledger lets through, recording them."""
    outcome = decide(index, cells_of(frame), min_units=K)
    keep = [d.released for d in outcome.decisions]
    return frame[keep].reset_index(drop=True)


CENTRAL_PLUS_ONE = (
    "SELECT COUNT(*) AS n, SUM(income) AS s FROM citizens WHERE district = 'Central' "
    "UNION ALL SELECT COUNT(*), SUM(income) FROM citizens "
    "WHERE district = 'Central' OR (sex = 'F' AND birth_date < DATE '1932-01-01')"
)


def test_one_person_added_to_a_cohort_in_one_union_job(ctx: PolicyContext, citizens: pa.Table) -> None:
    """Attack 3: UNION ALL of Central and Central-or-P0042. Without the ledger both rows pass the
    output check (946 and 947 units) and their SUMs differ by exactly P0042's income."""
    rows = checked(CENTRAL_PLUS_ONE, ctx, citizens)
    assert rows["n"].tolist() == [946, 947]
    assert int(rows["s"][1] - rows["s"][0]) == TARGET_INCOME  # the attack works without the ledger
    out = released(rows, CohortIndex())
    assert len(out) == 1
    assert TARGET_INCOME not in {int(a - b) for a in out["s"] for b in out["s"]}


def test_total_then_total_without_a_small_region_across_jobs(ctx: PolicyContext, citizens: pa.Table) -> None:
    """Attack 4: a total, then the same total over every region but Islet (three people). Without the
    ledger the difference is the three people's total income; with it the second job is withheld."""
    index = CohortIndex()
    total = checked("SELECT COUNT(*) AS n, SUM(income) AS s FROM citizens", ctx, citizens)
    others = "'Central', 'North', 'South', 'East', 'Harbour'"
    rest = checked(
        f"SELECT COUNT(*) AS n, SUM(income) AS s FROM citizens WHERE district IN ({others})", ctx, citizens
    )
    islet = int(citizens.to_pandas().query("district == 'Islet'")["income"].sum())
    assert int(total["s"][0] - rest["s"][0]) == islet  # the attack works without the ledger
    assert len(released(total, index)) == 1
    assert len(released(rest, index)) == 0


def test_total_then_the_same_total_of_those_born_after_a_year(ctx: PolicyContext, citizens: pa.Table) -> None:
    """Attack 4, second form: ``AND`` a condition that removes only P0042 (born in 1931)."""
    index = CohortIndex()
    women = "SELECT COUNT(*) AS n, SUM(income) AS s FROM citizens WHERE sex = 'F'"
    young = women + " AND birth_date >= DATE '1932-01-01'"
    first, second = checked(women, ctx, citizens), checked(young, ctx, citizens)
    assert int(first["s"][0] - second["s"][0]) == TARGET_INCOME  # works without the ledger
    assert len(released(first, index)) == 1
    assert len(released(second, index)) == 0


def test_a_group_by_whose_groups_miss_a_few_people_of_the_total(
    ctx: PolicyContext, citizens: pa.Table
) -> None:
    """Union tracker: two districts, then both together plus P0042. Total - A - B is P0042."""
    index = CohortIndex()
    groups = checked(
        "SELECT district, COUNT(*) AS n, SUM(income) AS s FROM citizens "
        "WHERE district IN ('North', 'South') GROUP BY district",
        ctx,
        citizens,
    )
    both = checked(
        "SELECT COUNT(*) AS n, SUM(income) AS s FROM citizens "
        "WHERE district IN ('North', 'South') OR (sex = 'F' AND birth_date < DATE '1932-01-01')",
        ctx,
        citizens,
    )
    assert int(both["s"][0] - groups["s"].sum()) == TARGET_INCOME  # works without the ledger
    assert len(released(groups, index)) == 2
    assert len(released(both, index)) == 0


def test_the_same_query_again_and_a_cohort_k_or_more_away_are_released(
    ctx: PolicyContext, citizens: pa.Table
) -> None:
    index = CohortIndex()
    by_district = "SELECT district, COUNT(*) AS n, SUM(income) AS s FROM citizens GROUP BY district"
    first = released(checked(by_district, ctx, citizens), index)
    again = released(checked(by_district, ctx, citizens), index)
    visible = ["district", "n", "s"]
    assert len(first) == 4  # Islet (three people) and Harbour (P0042 alone) fail the output check
    assert (
        again[visible]
        .sort_values("district")
        .reset_index(drop=True)
        .equals(first[visible].sort_values("district").reset_index(drop=True))
    )
    women = released(checked("SELECT COUNT(*) AS n FROM citizens WHERE sex = 'F'", ctx, citizens), index)
    assert len(women) == 1


def test_filter_subsets_are_cohorts_too(ctx: PolicyContext, citizens: pa.Table) -> None:
    """In-job differencing through FILTER: one row, two FILTER sums one person apart."""
    sql = (
        "SELECT SUM(income) FILTER (WHERE district = 'Central') AS a, "
        "SUM(income) FILTER (WHERE district = 'Central' OR (sex = 'F' AND birth_date < DATE '1932-01-01')) "
        "AS b FROM citizens"
    )
    rows = checked(sql, ctx, citizens)
    assert int(rows["b"][0] - rows["a"][0]) == TARGET_INCOME  # works without the ledger
    assert len(released(rows, CohortIndex())) == 0


def test_without_a_request_the_unit_lists_are_dropped_in_the_sandbox(
    ctx: PolicyContext, citizens: pa.Table
) -> None:
    raw = run_query(
        prepared_sql(CENTRAL_PLUS_ONE, ctx), {"citizens": citizens}, keyed_hash_key=None, limits=Limits()
    )
    assert [c for c in raw.column_names if c.startswith("_sbx_cohort")]
    assert not [
        c for c in sketch_cohorts(raw, None).column_names if c.startswith(("_sbx_cohort", "_sbx_sketch"))
    ]
