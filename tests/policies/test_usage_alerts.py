"""Alerts on unusual use, the pure rules: each fires at its threshold, not below, and names its evidence."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from policies.model import UsageHours
from policies.usage_alerts import (
    Activity,
    Charge,
    Download,
    JobRecord,
    Refusal,
    Thresholds,
    detect,
    differ_by_one_condition,
    near_identical,
    query_shape,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
T = Thresholds()


def rules(activity: Activity, thresholds: Thresholds = T, **kwargs: object) -> list[str]:
    return [s.rule for s in detect(activity, thresholds, now=NOW, **kwargs)]  # type: ignore[arg-type]


def jobs(*sqls: str, at: datetime = NOW) -> list[JobRecord]:
    return [JobRecord(f"j{i}", at - timedelta(minutes=i), sql) for i, sql in enumerate(sqls)]


def test_a_burst_of_refusals_alerts_with_every_refusal_as_evidence() -> None:
    refusals = [Refusal(f"j{i}", NOW - timedelta(minutes=i)) for i in range(3)]
    refusals += [Refusal(f"event:{40 + i}", NOW - timedelta(minutes=i)) for i in range(2)]
    [signal] = detect(Activity("alice", "flu", refusals=refusals), T, now=NOW)
    assert signal.rule == "refusal_burst"
    assert signal.jobs == ("j0", "j1", "j2")
    assert signal.events == (40, 41)
    assert rules(Activity("alice", "flu", refusals=refusals[:4])) == []


def test_refusals_outside_the_window_do_not_count() -> None:
    old = [Refusal(f"j{i}", NOW - timedelta(hours=2)) for i in range(10)]
    assert rules(Activity("alice", "flu", refusals=old)) == []


def test_what_an_earlier_alert_reported_is_not_reported_again() -> None:
    refusals = [Refusal(f"j{i}", NOW - timedelta(minutes=10)) for i in range(5)]
    activity = Activity("alice", "flu", refusals=refusals)
    assert rules(activity, reported={"refusal_burst": NOW - timedelta(minutes=5)}) == []
    assert rules(activity, reported={"refusal_burst": NOW - timedelta(minutes=15)}) == ["refusal_burst"]


def test_queries_walking_one_condition_across_values_alert() -> None:
    walk = [
        f"SELECT COUNT(*) AS n FROM citizens WHERE district = 'North' AND age = {a}" for a in range(40, 44)
    ]
    [signal] = detect(Activity("alice", "flu", jobs=jobs(*walk)), T, now=NOW)
    assert signal.rule == "near_identical_queries"
    assert set(signal.jobs) == {"j0", "j1", "j2", "j3"}


def test_adding_and_dropping_one_condition_counts_as_near_identical() -> None:
    base = "select count(*) from citizens where district = 'North'"
    sqls = [
        base,
        base + " and sex = 'F'",
        "SELECT  COUNT(*)  FROM Citizens WHERE district = 'North' AND income > 100",  # case and spaces
        base + " and age = 44",
    ]
    assert rules(Activity("alice", "flu", jobs=jobs(*sqls))) == ["near_identical_queries"]


def test_different_queries_and_repeats_are_not_near_identical() -> None:
    sqls = [
        "SELECT district, COUNT(*) FROM citizens GROUP BY district",
        "SELECT sex, COUNT(*) FROM citizens GROUP BY sex",
        "SELECT COUNT(*) FROM citizens WHERE a = 1 AND b = 2",
        "SELECT COUNT(*) FROM citizens WHERE a = 3 AND b = 4",  # two conditions changed
        "SELECT COUNT(*) FROM citizens WHERE a = 1 AND b = 2",  # a repeat
        "not sql at all (",
    ]
    assert rules(Activity("alice", "flu", jobs=jobs(*sqls))) == []


def test_query_shape_separates_the_skeleton_from_the_conditions() -> None:
    shape = query_shape("SELECT x FROM t WHERE (a = 1 AND b = 2) AND c > 3")
    assert shape is not None
    assert shape[0] == "SELECT x FROM t"
    assert shape[1] == frozenset({"a = 1", "b = 2", "c > 3"})


def test_ledger_withholds_alert_once_they_add_up() -> None:
    records = [JobRecord("j1", NOW, "q", rows_withheld_by_ledger=2), JobRecord("j2", NOW, "r", 1)]
    [signal] = detect(Activity("alice", "flu", jobs=records), T, now=NOW)
    assert (signal.rule, signal.jobs, signal.figures["rows_withheld_by_ledger"]) == (
        "ledger_hits",
        ("j1", "j2"),
        3,
    )
    assert rules(Activity("alice", "flu", jobs=records[:1])) == []


def test_spending_half_the_budget_in_the_window_alerts() -> None:
    charges = [Charge(f"j{i}", NOW, 0.5) for i in range(5)]
    assert rules(Activity("alice", "dp", charges=charges, dp_budget=5.0)) == ["budget_burn"]
    assert rules(Activity("alice", "dp", charges=charges[:4], dp_budget=5.0)) == []
    assert rules(Activity("alice", "dp", charges=charges, dp_budget=None)) == []


def test_jobs_outside_the_purposes_hours_alert() -> None:
    hours = UsageHours(start=8, end=18)  # UTC, Monday to Friday
    night = JobRecord("late", datetime(2026, 3, 2, 23, 0, tzinfo=UTC), "q")
    day = JobRecord("day", NOW, "q")
    sunday = JobRecord("sunday", datetime(2026, 3, 1, 10, 0, tzinfo=UTC), "q")
    window = Thresholds(window=timedelta(days=2))
    now = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    [signal] = detect(Activity("alice", "flu", jobs=[night, day, sunday], hours=hours), window, now=now)
    assert (signal.rule, set(signal.jobs)) == ("off_hours", {"late", "sunday"})
    assert detect(Activity("alice", "flu", jobs=[night], hours=None), window, now=now) == []


def test_reading_many_result_rows_alerts() -> None:
    reads = [Download("j1", NOW, 60_000, 7), Download("j2", NOW, 40_000, 8)]
    [signal] = detect(Activity("alice", "flu", downloads=reads), T, now=NOW)
    assert (signal.rule, signal.events, signal.figures["rows"]) == ("download_volume", (7, 8), 100_000)
    assert rules(Activity("alice", "flu", downloads=reads[:1])) == []


def test_the_indexed_comparison_finds_exactly_the_pairs_a_pairwise_one_finds() -> None:
    rng = random.Random(18)
    conditions = ["a = 1", "a = 2", "b = 1", "b = 2", "c = 1"]
    for _ in range(300):
        shapes = [
            (f"j{i}", (rng.choice(["q", "r"]), frozenset(rng.sample(conditions, rng.randint(0, 3)))))
            for i in range(rng.randint(0, 12))
        ]
        pairwise = {
            job_id
            for (first, (s1, c1)), (second, (s2, c2)) in itertools.combinations(shapes, 2)
            if s1 == s2 and differ_by_one_condition(c1, c2)
            for job_id in (first, second)
        }
        assert set(near_identical(shapes)) == pairwise
