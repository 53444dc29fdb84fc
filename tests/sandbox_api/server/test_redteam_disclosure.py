"""Red-team attacks against a live deployment: one person's facts from everything an operator receives.

The data is ``citizens_table()``: the district 'Tiny' holds two people, one woman (P0000558, born
1968, income 35001.04) and one man. The facts wanted are that woman's income and birth year: she is
singled out by district + sex. Each test runs the jobs an analyst would, under a scope of its own (so
each attack starts with an empty released-cohort ledger), gathers what the operator receives (rows,
withheld or released, reports) and asserts that the fact cannot be computed from it.

Tests marked ``xfail(strict=True)`` are attacks that SUCCEED on the current code: the reason says what
leaks and why. They pass (as expected failures) while the hole is open, and turn red when it is closed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.sandbox_api.api_helpers import SCOPE, World, citizens_table, scope_yaml, world
from tests.sandbox_api.python_job_helpers import approve_scope, python_scope_yaml, result_of, run_job, submit

TARGET_INCOME = 35001.04  # the only woman of 'Tiny'
TARGET_YEAR = 1968


@pytest.fixture
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # One deployment per attack: every scope over the same data shares one released-cohort ledger, so
    # the cohorts one attack released would otherwise decide the next attack's jobs.
    with world(tmp_path_factory.mktemp("state")) as deployment:
        yield deployment


def test_the_target_is_who_the_attacks_say() -> None:
    """The judge is not vacuous: the only woman of 'Tiny' has the income and birth year the tests seek."""
    people = citizens_table().to_pandas()
    target = people[(people["district"] == "Tiny") & (people["sex"] == "F")]
    assert len(target) == 1
    assert target["income"].iloc[0] == TARGET_INCOME
    assert target["birth_date"].iloc[0].year == TARGET_YEAR


def new_scope(api: World, name: str, **options: Any) -> str:
    """A scope of its own over the citizens (its own lineage), approved; returns its name."""
    document = scope_yaml(name=name, **options)
    approve_scope(api, document, name)
    return name


def outcome(api: World, scope: str, sql: str, *, who: str = "alice") -> list[list[Any]] | str | None:
    """The rows the operator receives, None when the job (or every row of it) was withheld, or the
    rules that refused it at submission."""
    answer = submit(api, {"scope": scope, "sql": sql}, who=who)
    if answer.status_code == 422:
        return "refused: " + ", ".join(sorted({f["rule"] for f in answer.json()["findings"]}))
    assert answer.status_code == 202, answer.text
    job = api.wait(answer.json()["job_id"], who=who, timeout_s=60.0)
    if job["state"] != "released":
        return None
    rows: list[list[Any]] = result_of(api, job["job_id"], who=who)["rows"]
    return rows or None


def near(value: Any, wanted: float) -> bool:
    return isinstance(value, int | float) and abs(value - wanted) < 0.005


WOMEN = "SELECT COUNT(*) AS n, SUM(income) AS total FROM citizens WHERE sex = 'F'"


# --- differencing across jobs that the ledger must catch --------------------------------------------


@pytest.mark.parametrize(
    "but_one",
    [
        WOMEN + " AND district <> 'Tiny'",
        "SELECT COUNT(*) AS n, SUM(income) AS total FROM citizens WHERE sex = 'F' AND person_id IN "
        "(SELECT person_id FROM citizens WHERE district <> 'Tiny')",
        "WITH w AS (SELECT person_id, sex, income FROM citizens WHERE district <> 'Tiny') "
        "SELECT COUNT(*) AS n, SUM(income) AS total FROM w WHERE sex = 'F'",
        "SELECT AVG(income) AS mean, COUNT(*) AS n FROM citizens WHERE sex = 'F' AND district <> 'Tiny'",
        "SELECT COUNT(*) AS n, SUM(income) AS total FROM citizens WHERE sex = 'F' "
        "AND district IN ('North', 'South', 'East', 'West', 'Harbour')",
    ],
    ids=["where", "in-subquery", "cte", "avg-instead-of-sum", "in-list"],
)
def test_women_without_tiny_after_all_women_is_withheld(api: World, but_one: str) -> None:
    """Pair. The fact: the target's income. Jobs: all women; all women outside 'Tiny', phrased as a
    WHERE, a semi-join on the unit, a CTE, an average instead of a sum, an IN list."""
    scope = new_scope(api, f"rt-pair-{zlib.crc32(but_one.encode()):08x}")
    first = outcome(api, scope, WOMEN)
    second = outcome(api, scope, but_one)
    assert first is not None
    assert second is None


def test_a_tracker_of_three_large_cohorts_is_caught(api: World) -> None:
    """Denning's tracker, three jobs, every cohort large: all women (N); women of North or the target
    (X = C + T); women outside North or the target (Y = C + not-T). X + Y - N is the target: the third
    is a complement of the first two and is withheld."""
    scope = new_scope(api, "rt-tracker")
    target = "(district = 'Tiny')"
    assert outcome(api, scope, WOMEN) is not None
    assert outcome(api, scope, WOMEN + f" AND (district = 'North' OR {target})") is not None
    assert outcome(api, scope, WOMEN + f" AND (district <> 'North' OR {target})") is None


def test_a_new_row_filter_in_the_same_lineage_is_compared_with_earlier_rows(api: World) -> None:
    """Row filters. Version 1 has none: all women. Version 2 adds ``row_filter: district <> 'Tiny'``
    (an officer's ordinary change): the same query now leaves out the target and is withheld."""
    scope = new_scope(api, "rt-row-filter")
    assert outcome(api, scope, WOMEN) is not None
    filtered = scope_yaml(name=scope).replace(
        "    unit: person_id\n    columns:",
        "    unit: person_id\n    row_filter: \"district <> 'Tiny'\"\n    columns:",
    )
    assert "row_filter" in filtered
    approve_scope(api, filtered, scope)
    assert outcome(api, scope, WOMEN) is None


def test_women_as_the_union_of_two_released_parts_is_withheld(api: World) -> None:
    """Union. Jobs: women of North and South; women of East, West and Harbour; all women (the two
    parts plus the target)."""
    scope = new_scope(api, "rt-union")
    assert outcome(api, scope, WOMEN + " AND district IN ('North', 'South')") is not None
    assert outcome(api, scope, WOMEN + " AND district IN ('East', 'West', 'Harbour')") is not None
    assert outcome(api, scope, WOMEN) is None


def test_a_complement_of_two_released_cohorts_is_withheld(api: World) -> None:
    """Complement (N - A + B). Jobs: all women; women of North; women of South, East, West, Harbour
    (all women minus North minus the target)."""
    scope = new_scope(api, "rt-complement")
    assert outcome(api, scope, WOMEN) is not None
    assert outcome(api, scope, WOMEN + " AND district = 'North'") is not None
    assert outcome(api, scope, WOMEN + " AND district IN ('South', 'East', 'West', 'Harbour')") is None


def test_a_self_join_that_drops_the_target_from_one_slot_is_withheld(api: World) -> None:
    """Joins that change which units count. Jobs: all women; the same through a self-join on the unit
    whose second side leaves out 'Tiny'."""
    scope = new_scope(api, "rt-join")
    assert outcome(api, scope, WOMEN) is not None
    joined = (
        "SELECT COUNT(*) AS n, SUM(a.income) AS total FROM citizens a JOIN citizens b "
        "ON a.person_id = b.person_id WHERE a.sex = 'F' AND b.district <> 'Tiny'"
    )
    assert outcome(api, scope, joined) is None


def test_a_filter_cell_and_a_row_one_person_apart_are_not_both_released(api: World) -> None:
    """FILTER cells against rows. Jobs: the women as a FILTER cell of an all-citizens row; then women
    outside 'Tiny' as a row. The second is the cell minus the target."""
    scope = new_scope(api, "rt-filter-row")
    cell = outcome(
        api,
        scope,
        "SELECT COUNT(*) FILTER (WHERE sex = 'F') AS nf, SUM(income) FILTER (WHERE sex = 'F') AS sf "
        "FROM citizens",
    )
    assert cell is not None
    assert cell[0][0] is not None
    assert outcome(api, scope, WOMEN + " AND district <> 'Tiny'") is None


def test_a_filter_without_the_target_reads_as_the_whole_row(api: World) -> None:
    """FILTER subset whose rest is the target: ``SUM(income) FILTER (WHERE district <> 'Tiny')`` over
    the women. Neutralised: the cell is the whole row's, so cell and total never differ."""
    scope = new_scope(api, "rt-filter-rest")
    rows = outcome(
        api,
        scope,
        "SELECT SUM(income) AS total, SUM(income) FILTER (WHERE district <> 'Tiny') AS rest "
        "FROM citizens WHERE sex = 'F'",
    )
    assert rows is not None
    total, rest = rows[0]
    assert rest is None or not near(total - rest, TARGET_INCOME)


def test_another_grantee_under_a_new_scope_version_shares_the_ledger(api: World) -> None:
    """Different grantees and scope versions of one lineage. Alice releases all women under version 1;
    version 2 adds bob, who asks for the women outside 'Tiny'."""
    scope = new_scope(api, "rt-grantees")
    assert outcome(api, scope, WOMEN) is not None
    new_scope(api, scope, grantees=("operator:alice", "operator:bob"))
    assert outcome(api, scope, WOMEN + " AND district <> 'Tiny'", who="bob") is None


# --- documented limits and undocumented holes of the ledger ---------------------------------------------


def test_a_total_minus_its_released_partition_does_not_give_the_suppressed_cell(api: World) -> None:
    """The fact: the target's income. Jobs: ``SELECT sex, COUNT(*), SUM(income) ... GROUP BY sex``;
    ``SELECT district, sex, COUNT(*), SUM(income) ... GROUP BY district, sex`` (Tiny's two cells are
    suppressed). Women's total minus the five released women's rows is the target."""
    scope = new_scope(api, "rt-partition")
    by_sex = outcome(api, scope, "SELECT sex, COUNT(*) AS n, SUM(income) AS s FROM citizens GROUP BY sex")
    cells = outcome(
        api,
        scope,
        "SELECT district, sex, COUNT(*) AS n, SUM(income) AS s FROM citizens GROUP BY district, sex",
    )
    assert by_sex is not None
    assert cells is not None
    women = next(row for row in by_sex if row[0] == "F")
    rest = sum(row[3] for row in cells if row[1] == "F")
    assert not near(women[2] - rest, TARGET_INCOME)


BY_SEX = "SELECT sex, COUNT(*) AS n, SUM(income) AS s FROM citizens GROUP BY sex"
BY_DISTRICT_SEX = "SELECT district, sex, COUNT(*) AS n, SUM(income) AS s FROM citizens GROUP BY district, sex"


def women_minus_parts(total: list[list[Any]] | str | None, parts: list[list[Any]] | str | None) -> bool:
    """Whether the women's total minus the released women's district rows is the target's income."""
    if not isinstance(total, list) or not isinstance(parts, list):
        return False
    women = [row for row in total if row[0] == "F"]
    rest = sum(row[3] for row in parts if row[1] == "F")
    return bool(women) and near(women[0][2] - rest, TARGET_INCOME)


def test_a_partition_released_first_makes_its_total_withheld(api: World) -> None:
    """The same subtraction the other way round. Jobs: district x sex (Tiny's cells suppressed), then
    the totals by sex: the women's total is the released partition plus the target."""
    scope = new_scope(api, "rt-partition-first")
    cells = outcome(api, scope, BY_DISTRICT_SEX)
    by_sex = outcome(api, scope, BY_SEX)
    assert cells is not None
    assert not women_minus_parts(by_sex, cells)


def test_a_total_and_its_partition_in_one_job_do_not_give_the_suppressed_cell(api: World) -> None:
    """In-job margins: one ``UNION ALL`` of the totals by sex (labelled 'all') and district x sex. The
    women's 'all' row minus the other women's rows is the target."""
    scope = new_scope(api, "rt-partition-one-job")
    rows = outcome(
        api,
        scope,
        "SELECT 'all' AS district, sex, COUNT(*) AS n, SUM(income) AS s FROM citizens GROUP BY sex "
        "UNION ALL " + BY_DISTRICT_SEX,
    )
    assert isinstance(rows, list)
    totals = [[row[1], row[2], row[3]] for row in rows if row[0] == "all"]
    parts = [row for row in rows if row[0] != "all"]
    assert not women_minus_parts(totals, parts)


def test_a_grand_total_minus_every_released_row_is_not_one_person(api: World) -> None:
    """The grand total as the margin. Jobs: all citizens; then by district x sex. All citizens minus
    every released row is Tiny's two people: two, not one, but still below k, so withheld."""
    scope = new_scope(api, "rt-grand-total")
    total = outcome(api, scope, "SELECT COUNT(*) AS n, SUM(income) AS s FROM citizens")
    cells = outcome(api, scope, BY_DISTRICT_SEX)
    assert isinstance(total, list)
    assert isinstance(cells, list)
    assert total[0][0] - sum(row[2] for row in cells) >= 10


def test_a_partition_without_suppressed_cells_is_released_in_full(api: World) -> None:
    """No false secondary suppression: outside 'Tiny' every district x sex cell has k people, so the
    totals by sex and the full partition are both released, exactly, and add up."""
    scope = new_scope(api, "rt-partition-clean")
    where = " WHERE district <> 'Tiny' GROUP BY"
    by_sex = outcome(api, scope, BY_SEX.replace(" GROUP BY", where))
    cells = outcome(api, scope, BY_DISTRICT_SEX.replace(" GROUP BY", where))
    assert isinstance(by_sex, list)
    assert isinstance(cells, list)
    assert len(cells) == 10
    women = next(row for row in by_sex if row[0] == "F")
    assert women[1] == sum(row[2] for row in cells if row[1] == "F")


def test_the_union_check_cannot_be_outrun_by_filler_jobs(api: World) -> None:
    """The fact: the target's income. Jobs: women of North and South; women of East, West, Harbour;
    then filler jobs grouping by windows of birth years (about 420 new cohorts, each 20+ people
    apart); then all women. The last differs from the union of the first two by the target."""
    scope = new_scope(api, "rt-recent")
    first = outcome(api, scope, WOMEN + " AND district IN ('North', 'South')")
    second = outcome(api, scope, WOMEN + " AND district IN ('East', 'West', 'Harbour')")
    assert first is not None
    assert second is not None
    for width in range(1, 7):
        for offset in range(width):
            outcome(
                api,
                scope,
                f"SELECT FLOOR((YEAR(birth_date) - {offset}) / {width}) AS w, COUNT(*) AS n "
                "FROM citizens GROUP BY 1",
            )
    whole = outcome(api, scope, WOMEN)
    leaked = whole is not None and near(whole[0][1] - first[0][1] - second[0][1], TARGET_INCOME)
    assert not leaked


def test_a_second_scope_over_the_same_data_does_not_reset_the_ledger(api: World) -> None:
    """The fact: the target's income. Jobs: all women under scope A; women outside 'Tiny' under scope
    B (same dataset, same operator, another name)."""
    first_scope = new_scope(api, "rt-lineage-a")
    other_scope = new_scope(api, "rt-lineage-b")
    everyone = outcome(api, first_scope, WOMEN)
    but_one = outcome(api, other_scope, WOMEN + " AND district <> 'Tiny'")
    leaked = (
        everyone is not None and but_one is not None and near(everyone[0][1] - but_one[0][1], TARGET_INCOME)
    )
    assert not leaked


def test_a_new_min_units_does_not_hide_earlier_parts_from_the_union_check(api: World) -> None:
    """The fact: the target's income. Jobs under version 1 (k = 10): women of North and South; women of
    East, West, Harbour. Version 2 (k = 11): all women."""
    scope = new_scope(api, "rt-layout")
    first = outcome(api, scope, WOMEN + " AND district IN ('North', 'South')")
    second = outcome(api, scope, WOMEN + " AND district IN ('East', 'West', 'Harbour')")
    assert first is not None
    assert second is not None
    new_scope(api, scope, min_units=11)
    whole = outcome(api, scope, WOMEN)
    leaked = whole is not None and near(whole[0][1] - first[0][1] - second[0][1], TARGET_INCOME)
    assert not leaked


def test_a_new_min_units_still_catches_a_pair(api: World) -> None:
    """Pairs across sketch layouts: all women under k = 10, women outside 'Tiny' under k = 11."""
    scope = new_scope(api, "rt-layout-pair")
    assert outcome(api, scope, WOMEN) is not None
    new_scope(api, scope, min_units=11)
    assert outcome(api, scope, WOMEN + " AND district <> 'Tiny'") is None


@pytest.mark.xfail(
    strict=True,
    reason="released-vs-withheld is an oracle: a cohort 'women outside Tiny, plus Tiny women born in Y' "
    "equals the released cohort of all women (a repeat, released) exactly when the target was born in "
    "Y, and differs by one person (withheld) otherwise. Any deterministic rule that releases an exact "
    "repeat and withholds a 1..k-1 difference answers 'is the difference empty?'; withholding every "
    "repeat reached by another query instead would refuse ordinary re-aggregations (the women's row of "
    "GROUP BY sex after a count of the women). Left to differential privacy (docs/disclosure.md)",
)
def test_the_ledger_decision_does_not_tell_the_birth_year(api: World) -> None:
    """The fact: the target's birth year. Jobs: all women; then, for each candidate year Y, the women
    outside 'Tiny' or born in Y. Only the true year is released."""
    scope = new_scope(api, "rt-ledger-oracle")
    assert outcome(api, scope, WOMEN) is not None
    released_years = [
        year
        for year in (1966, 1967, 1968, 1969)
        if outcome(api, scope, WOMEN + f" AND (district <> 'Tiny' OR YEAR(birth_date) = {year})") is not None
    ]
    assert released_years != [TARGET_YEAR]


# --- single-job oracles -------------------------------------------------------------------------------------


def test_count_distinct_of_a_group_column_does_not_tell_whether_the_target_matches(api: World) -> None:
    """The fact: the target's birth year. One job per candidate year (each under a fresh scope, so the
    ledger plays no part): ``COUNT(DISTINCT district)`` of the women outside 'Tiny' or born in that
    year. The answer is 6 exactly for the target's year, 5 otherwise."""
    answers = {
        year: outcome(
            api,
            new_scope(api, f"rt-count-distinct-{year}"),
            "SELECT COUNT(DISTINCT district) AS d FROM citizens WHERE sex = 'F' "
            f"AND (district <> 'Tiny' OR YEAR(birth_date) = {year})",
        )
        for year in (TARGET_YEAR - 1, TARGET_YEAR)
    }
    assert answers[TARGET_YEAR - 1] == answers[TARGET_YEAR]


def test_order_by_a_distinct_count_does_not_rank_by_the_target(api: World) -> None:
    """The fact: the target's birth year. One job per candidate year Y (fresh scopes): citizens outside
    'Tiny' or born in Y, by sex, ``ORDER BY COUNT(DISTINCT district) DESC, sex DESC LIMIT 1``. The
    women's row holds six districts (and comes first) only when the target was born in Y."""
    first_rows = {}
    for year in (TARGET_YEAR - 1, TARGET_YEAR):
        rows = outcome(
            api,
            new_scope(api, f"rt-order-{year}"),
            "SELECT sex, COUNT(*) AS n FROM citizens WHERE district <> 'Tiny' OR YEAR(birth_date) = "
            f"{year} GROUP BY sex ORDER BY COUNT(DISTINCT district) DESC, sex DESC LIMIT 1",
        )
        first_rows[year] = None if rows is None else rows[0][0]
    assert first_rows[TARGET_YEAR - 1] == first_rows[TARGET_YEAR]


@pytest.mark.parametrize(
    "aggregate",
    [
        "SUM(income * (district = 'Tiny'))",
        "SUM(income * LENGTH(district))",
        "SUM(income * YEAR(birth_date))",
        "SUM(income * STRPOS(district, 'y'))",
        "SUM(GREATEST(income, 0) * 2)",
    ],
    ids=["times-a-condition", "times-length", "times-year", "times-position", "through-greatest"],
)
def test_a_value_weighted_by_the_target_group_is_refused(api: World, aggregate: str) -> None:
    """Values, not units: the same cohort (all women) with the aggregated value weighted so that only
    the target's income survives (or is told apart by a factor). The ledger cannot see values, so the
    checks must refuse the weighting; each is refused before it runs."""
    answer = submit(
        api,
        {
            "scope": new_scope(api, "rt-weights"),
            "sql": f"SELECT COUNT(*) AS n, {aggregate} AS s FROM citizens WHERE sex = 'F'",
        },
    )
    assert answer.status_code == 422, answer.text


def test_a_ledger_refusal_does_not_say_how_many_people_differ(api: World) -> None:
    """Report texts. The fact: how many people of 'Tiny' are women. Jobs: all citizens; all but the
    Tiny women; all but Tiny. Both later jobs are withheld with the same report."""
    scope = new_scope(api, "rt-report")
    total = "SELECT COUNT(*) AS n, SUM(income) AS s FROM citizens"
    assert outcome(api, scope, total) is not None
    reports = []
    for where in (" WHERE NOT (district = 'Tiny' AND sex = 'F')", " WHERE district <> 'Tiny'"):
        job = run_job(api, {"scope": scope, "sql": total + where})
        body = result_of(api, job["job_id"]) if job["state"] == "released" else {"rows": None, "report": job}
        assert not body["rows"]
        reports.append(body["report"])
    assert reports[0]["reasons"] == reports[1]["reasons"]
    assert reports[0].get("rows_withheld_by_ledger") == reports[1].get("rows_withheld_by_ledger")


@pytest.mark.parametrize("year", [TARGET_YEAR, TARGET_YEAR + 1])
def test_a_small_filter_subset_reads_the_same_whether_or_not_the_target_matches(
    api: World, year: int
) -> None:
    """NULL against value. ``SUM(income) FILTER (WHERE district = 'Tiny' AND YEAR(birth_date) = Y)``:
    one person or nobody; both read NULL, and the rest of the row is the same."""
    scope = new_scope(api, f"rt-null-{year}")
    rows = outcome(
        api,
        scope,
        "SELECT COUNT(*) AS n, SUM(income) FILTER (WHERE district = 'Tiny' AND YEAR(birth_date) = "
        f"{year}) AS t FROM citizens WHERE sex = 'F'",
    )
    assert rows == [[757, None]]


def test_having_on_a_small_subset_is_refused_before_it_runs(api: World) -> None:
    """HAVING by the operator. ``GROUP BY sex HAVING COUNT(*) FILTER (WHERE <target, year Y>) IS NULL``
    would drop rows by a subset of one person; it is refused for both years alike, before anything runs."""
    scope = new_scope(api, "rt-having")
    answers = [
        submit(
            api,
            {
                "scope": scope,
                "sql": "SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex HAVING COUNT(*) FILTER "
                f"(WHERE district = 'Tiny' AND YEAR(birth_date) = {year}) IS NULL",
            },
        )
        for year in (TARGET_YEAR, TARGET_YEAR + 1)
    ]
    assert [a.status_code for a in answers] == [422, 422]
    assert [[f["rule"] for f in a.json()["findings"]] for a in answers] == [["filter_placement"]] * 2


def test_paging_by_offset_does_not_count_a_small_group(api: World) -> None:
    """LIMIT/OFFSET paging over an ordered result. ``GROUP BY district ORDER BY n LIMIT 1 OFFSET i``
    with the target kept or left out by birth year: the pages must be the same."""
    scope = new_scope(api, "rt-paging")
    pages = []
    for year in (TARGET_YEAR, TARGET_YEAR + 1):
        pages.append(
            [
                outcome(
                    api,
                    scope,
                    "SELECT district, COUNT(*) AS n FROM citizens WHERE NOT (district = 'Tiny' AND sex = 'F' "
                    f"AND YEAR(birth_date) = {year}) GROUP BY district ORDER BY n ASC LIMIT 1 OFFSET {i}",
                )
                for i in (0, 5)
            ]
        )
    assert pages[0] == pages[1]


def everything_received(api: World, scope: str, sql: str) -> tuple[Any, ...]:
    """Status, state, reason or findings, and rows: all an operator learns from one submission."""
    answer = submit(api, {"scope": scope, "sql": sql})
    if answer.status_code != 202:
        return answer.status_code, [f["rule"] for f in answer.json().get("findings", [])]
    job = api.wait(answer.json()["job_id"])
    rows = result_of(api, job["job_id"])["rows"] if job["state"] == "released" else None
    return answer.status_code, job["state"], job.get("reason"), rows


@pytest.mark.parametrize(
    "failing",
    [
        "LN(CASE WHEN {hit} THEN -1.0 ELSE 1.0 END) >= 0",
        "CAST(CASE WHEN {hit} THEN 'x' ELSE '1' END AS INTEGER) = 1",
        "LIST_EXTRACT([1], CASE WHEN {hit} THEN 5 ELSE 1 END) = 1",
    ],
    ids=["log-of-negative", "bad-cast", "list-index"],
)
def test_an_error_on_the_target_row_does_not_change_the_outcome(api: World, failing: str) -> None:
    """Error against success. The fact: the target's birth year. A WHERE condition that fails exactly on
    the target's row if she was born in Y; the outcome (refusal, error, rows) must be the same for the
    true year and another."""
    scope = new_scope(api, "rt-error")
    outcomes = [
        everything_received(
            api,
            scope,
            "SELECT sex, COUNT(*) AS n FROM citizens WHERE "
            + failing.format(hit=f"district = 'Tiny' AND YEAR(birth_date) = {year}")
            + " GROUP BY sex",
        )
        for year in (TARGET_YEAR, TARGET_YEAR + 1)
    ]
    assert outcomes[0] == outcomes[1]


def test_window_shares_are_of_the_released_rows_only(api: World) -> None:
    """Window shares ``SUM(COUNT(*)) OVER ()``: the denominator is the released rows' total, so the
    shares do not reveal the suppressed district's size."""
    scope = new_scope(api, "rt-window")
    rows = outcome(
        api,
        scope,
        "SELECT district, COUNT(*) AS n, 100.0 * COUNT(*) / SUM(COUNT(*)) OVER () AS share "
        "FROM citizens GROUP BY district",
    )
    assert rows is not None
    released = sum(row[1] for row in rows)
    assert all(abs(row[2] - 100.0 * row[1] / released) < 1e-6 for row in rows)


def test_a_remainder_row_without_the_target_is_withheld(api: World) -> None:
    """Remainder rows. Under ``suppression: remainder``: district x birth year with its remainder (the
    small cells merged), then the same without the target: the two remainders differ by her."""
    name = "rt-remainder"
    approve_scope(api, scope_yaml(name=name).replace("suppression: drop", "suppression: remainder"), name)
    query = "SELECT district, birth_date, COUNT(*) AS n, SUM(income) AS s FROM citizens {where} GROUP BY 1, 2"
    first = outcome(api, name, query.format(where=""))
    second = outcome(api, name, query.format(where="WHERE NOT (district = 'Tiny' AND sex = 'F')"))
    assert first is not None
    remainder = [row for row in first if row[0] is None]
    others = [row for row in second or [] if row[0] is None]
    assert remainder, "the remainder row is released"
    assert not (others and near(remainder[0][3] - others[0][3], TARGET_INCOME))


def test_a_python_job_one_person_apart_from_a_sql_row_is_withheld(api: World) -> None:
    """The fact: the target's income. Under a Python-enabled scope (its row filter drops 'Harbour'):
    SQL, the women outside West; Python, ``aggregate()`` of the women outside West and 'Tiny' (a mask
    whose both sides are large, so nothing is tainted). The difference of the sums is the target."""
    scope = "rt-python-ledger"
    approve_scope(api, python_scope_yaml(scope, checkers=1), scope)
    sql = outcome(api, scope, WOMEN + " AND district <> 'West'")
    assert sql is not None
    code = (
        "p = citizens[(citizens['sex'] == 'F') & ~citizens['district'].isin(['West', 'Tiny'])]\n"
        "result = aggregate(p, by='sex', aggs={'n': ('income', 'count'), 's': ('income', 'sum')})"
    )
    job = run_job(api, {"scope": scope, "kind": "python", "mode": "real", "code": code})
    rows = result_of(api, job["job_id"])["rows"] if job["state"] == "released" else []
    assert not any(near(sql[0][1] - row[2], TARGET_INCOME) for row in rows)


def test_swapping_the_target_for_another_person_is_withheld(api: World) -> None:
    """A symmetric difference with an unchanged count. Jobs: all women; the women outside 'Tiny' plus
    the man of 'Tiny' (the same count). Their difference is one man's income minus the target's."""
    scope = new_scope(api, "rt-swap")
    assert outcome(api, scope, WOMEN) is not None
    swapped = (
        "SELECT COUNT(*) AS n, SUM(income) AS total FROM citizens WHERE (sex = 'F' AND district <> 'Tiny') "
        "OR (sex = 'M' AND district = 'Tiny')"
    )
    assert outcome(api, scope, swapped) is None


def test_a_swap_padded_with_a_large_group_is_caught_as_a_complement(api: World) -> None:
    """Padding the swap: all women; women outside 'Tiny' plus the men of 'Tiny' and Harbour (released,
    far from everything); then the men of Harbour, which with the first two isolates the swap."""
    scope = new_scope(api, "rt-swap-padded")
    assert outcome(api, scope, WOMEN) is not None
    padded = (
        "SELECT COUNT(*) AS n, SUM(income) AS total FROM citizens WHERE (sex = 'F' AND district <> 'Tiny') "
        "OR (sex = 'M' AND district IN ('Tiny', 'Harbour'))"
    )
    assert outcome(api, scope, padded) is not None
    harbour_men = (
        "SELECT COUNT(*) AS n, SUM(income) AS total FROM citizens WHERE sex = 'M' AND district = 'Harbour'"
    )
    assert outcome(api, scope, harbour_men) is None


def test_the_dry_run_says_the_same_whatever_the_target_holds(api: World) -> None:
    """Dry runs. The fact: the target's birth year. The dry run of a query true only for her (if born
    in Y) answers the same for the true year and another: it never reads the data."""
    scope = new_scope(api, "rt-dry-run")
    answers = []
    for year in (TARGET_YEAR, TARGET_YEAR + 1):
        sql = f"SELECT COUNT(*) AS n FROM citizens WHERE district = 'Tiny' AND YEAR(birth_date) = {year}"
        answer = api.client.post("/v1/jobs/check", headers=api.h("alice"), json={"scope": scope, "sql": sql})
        answers.append((answer.status_code, answer.text.replace(str(year), "Y")))
    assert answers[0] == answers[1]


def test_a_window_count_counts_only_released_rows(api: World) -> None:
    """``COUNT(COUNT(*)) OVER ()`` over a GROUP BY: the number of groups it reports is the number released,
    so it does not say that a district below k exists."""
    scope = new_scope(api, "rt-window-count")
    rows = outcome(
        api,
        scope,
        "SELECT district, COUNT(*) AS n, COUNT(COUNT(*)) OVER () AS groups FROM citizens GROUP BY district",
    )
    assert rows is not None
    assert {row[2] for row in rows} == {len(rows)}


# --- what the catalog and the mock twin say about the real table ----------------------------------


def catalog_row_counts(api: World, who: str = "alice") -> list[Any]:
    """Every row count the operator can read in the catalog, from both dataset routes."""
    dataset = api.client.get("/v1/datasets/health-bureau/citizens", headers=api.h(who)).json()
    listed = api.client.get("/v1/datasets", headers=api.h(who)).json()
    version = api.client.get(
        f"/v1/datasets/health-bureau/citizens/versions/{api.dataset_version}", headers=api.h(who)
    ).json()
    versions = [*dataset["versions"], *(v for d in listed for v in d["versions"]), version]
    return [t["row_count"] for v in versions for t in v["tables"]]


@pytest.mark.parametrize("year", [TARGET_YEAR, TARGET_YEAR + 1])
def test_the_catalog_row_count_is_not_a_released_total_to_subtract_from(
    tmp_path_factory: pytest.TempPathFactory, year: int
) -> None:
    """The catalog. The fact: the target's birth year. The catalog told the operator the table's exact
    row count (1,500), a total of everyone that no ledger ever recorded; one job counting everyone but
    "the woman of Tiny born in Y" then released 1,499 for her true year and 1,500 for any other. An
    operator reads no exact row count of a real table, from the API or from the size of the mock twin."""
    with world(tmp_path_factory.mktemp("state")) as api:
        counts = catalog_row_counts(api)
        sql = (
            "SELECT COUNT(*) AS n FROM citizens "
            f"WHERE NOT (district = 'Tiny' AND sex = 'F' AND YEAR(birth_date) = {year})"
        )
        released = outcome(api, SCOPE, sql)
        mock = run_job(api, {"scope": SCOPE, "sql": "SELECT COUNT(*) AS n FROM citizens", "mode": "mock"})
        twin = result_of(api, mock["job_id"])["rows"][0][0]
    assert released is not None
    assert len(released) == 1
    known_totals = {c for c in counts if c is not None} | {twin}
    assert citizens_table().num_rows not in known_totals
    assert all(count is None for count in counts)


def test_the_report_does_not_say_whether_rounding_changed_a_cell(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Rounding. The fact: the target's birth year. Under ``rounding: {base: 5}`` a count of everyone
    but "the woman of Tiny born in Y" comes back as 1,500 whether it is 1,499 (she was born in Y) or
    1,500 (she was not): rounding hides the one person. The report counted the cells whose value the
    rounding *changed* (1 against 0), which said which. Everything the operator receives, report
    included, must be the same for both years."""
    received = []
    for year in (TARGET_YEAR, TARGET_YEAR + 1):
        with world(tmp_path_factory.mktemp("state")) as api:
            scope = new_scope(api, "rt-rounding", rounding="{base: 5}")
            sql = (
                "SELECT COUNT(*) AS n FROM citizens "
                f"WHERE NOT (district = 'Tiny' AND sex = 'F' AND YEAR(birth_date) = {year})"
            )
            job = run_job(api, {"scope": scope, "sql": sql})
            assert job["state"] == "released", job["reason"]
            result = result_of(api, job["job_id"])
            received.append((result["rows"], result["report"], result["receipt"]["suppression"]))
    assert received[0][0] == [[1500]]
    assert received[0] == received[1]


# --- what a withheld Python job tells its operator before anyone reviews it ------------------------


def python_job_in_each_year(
    tmp_path_factory: pytest.TempPathFactory,
    scope: str,
    code_of: Callable[[int], str],
    seen_of: Callable[[World, dict[str, Any]], Any],
) -> list[Any]:
    """For the target's true birth year and the next, in a fresh deployment each: the Python job
    ``code_of(year)`` run under ``scope`` (one checker), and what ``seen_of`` reads of it."""
    seen = []
    for year in (TARGET_YEAR, TARGET_YEAR + 1):
        with world(tmp_path_factory.mktemp("state")) as api:
            approve_scope(api, python_scope_yaml(scope, checkers=1), scope)
            job = run_job(api, {"scope": scope, "kind": "python", "code": code_of(year)})
            seen.append(seen_of(api, job))
    return seen


def test_a_withheld_job_does_not_tell_its_operator_how_many_flags_its_data_raised(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Review. The fact: the target's birth year. A Python job counts, by sex, the women of Tiny born
    in Y; its plain table always goes to an output checker. The automatic disclosure report flags the
    small group only if it exists, and the operator read the number of flags in the job's state
    ("the automatic disclosure report has 2 flag(s)" against 0) before any checker looked: her birth
    year, whatever the checker then decides. The operator's view of a withheld job must be the same
    for both years (the report itself is for the checkers)."""

    def code_of(year: int) -> str:
        return (
            "women = citizens[(citizens['district'] == 'Tiny') & (citizens['sex'] == 'F') "
            f"& (citizens['birth_date'].dt.year == {year})]\n"
            "result = women.groupby('sex').agg(n=('income', 'count')).reset_index()\n"
        )

    def seen_of(api: World, job: dict[str, Any]) -> Any:
        assert job["state"] == "withheld", job["reason"]
        listed = [
            j
            for j in api.client.get("/v1/jobs", headers=api.h("alice")).json()["jobs"]
            if j["job_id"] == job["job_id"]
        ]
        return [(j["state"], j["reason"], j["review"]) for j in (job, *listed)]

    seen = python_job_in_each_year(tmp_path_factory, "rt-review-flags", code_of, seen_of)
    assert seen[0] == seen[1]


def test_a_released_python_table_does_not_carry_a_model_fits_observation_count(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Python reports. The fact: the target's birth year. A Python job fits a line (``np.polyfit``)
    to everyone but "the woman of Tiny born in Y", throws the fit away, and returns an ordinary
    ``aggregate()`` table, which is released without review. The report released with it named the
    fit's residual degrees of freedom: observations minus parameters, one fewer for her true year.
    Everything released must be the same for both years."""

    def code_of(year: int) -> str:
        return (
            "import numpy as np\n"
            "rest = citizens[~((citizens['district'] == 'Tiny') & (citizens['sex'] == 'F') "
            f"& (citizens['birth_date'].dt.year == {year}))]\n"
            "np.polyfit(rest['income'].to_numpy(), rest['income'].to_numpy(), 1)\n"
            "result = aggregate(citizens, by='sex', aggs={'people': ('income', 'count')})\n"
        )

    def seen_of(api: World, job: dict[str, Any]) -> Any:
        assert job["state"] == "released", job["reason"]
        result = result_of(api, job["job_id"])
        return (result["rows"], result["report"], result["output"])

    received = python_job_in_each_year(tmp_path_factory, "rt-model-fit", code_of, seen_of)
    assert received[0] == received[1]


@pytest.mark.parametrize(
    "prints",
    [
        "if len(her) > 0:\n    print('found')\n",
        "print('x' * len(her), end='')\n",
        "def show(v):\n    print('x')\n    return v\n\n_ = her['income'].apply(show)\n",
    ],
    ids=["under-a-condition", "nothing-or-a-character", "in-a-callback-per-row"],
)
def test_whether_a_python_job_printed_does_not_tell_its_operator_anything(
    tmp_path_factory: pytest.TempPathFactory, prints: str
) -> None:
    """Review. The fact: the target's birth year. A Python job prints only if "the woman of Tiny born
    in Y" exists (under an ``if``, or ``'x' * len(her)``: one character or none), then returns an
    ``aggregate()`` table. Under the ``if`` the data-steered code sends the table to a checker either
    way, and the withheld job's reason said "printed output and an aggregate table" or "its output";
    with one character or none, or a printing callback that ``apply`` calls once per row of her frame,
    a clean table with nothing printed was released while one with something printed waited for a
    checker. Either way her birth year, before any checker looked.
    What the operator sees of the job must be the same for both years."""

    def code_of(year: int) -> str:
        return (
            "her = citizens[(citizens['district'] == 'Tiny') & (citizens['sex'] == 'F') "
            f"& (citizens['birth_date'].dt.year == {year})]\n"
            + prints
            + "result = aggregate(citizens, by='sex', aggs={'people': ('income', 'count')})\n"
        )

    seen = python_job_in_each_year(
        tmp_path_factory,
        "rt-review-printed",
        code_of,
        lambda _, job: (job["state"], job["reason"], job["review"]),
    )
    assert seen[0] == seen[1]
