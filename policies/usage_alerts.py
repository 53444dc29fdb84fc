"""Alerts on unusual use: pure rules over what one operator did under one scope in a recent window.

The service (``sandbox_api/server/services/alerts.py``) reads the records (refusals, jobs, downloads,
differential-privacy charges) with small bounded queries and hands them here; every rule returns the
signals it sees, each naming its evidence (job ids and audit event numbers), so an auditor can check it.
No rule reads a clock: the window's end is an argument.

The patterns (docs/governance.md, "Alerts on unusual use"):

- ``refusal_burst``: many refusals in the window (an operator feeling for the edges of a scope);
- ``near_identical_queries``: many queries that differ from another by one WHERE condition (a
  differencing attack walks one condition across values, or adds and drops one);
- ``ledger_hits``: rows the released-cohort ledger withheld (each is a near-repeat of a cohort);
- ``budget_burn``: a large share of the scope's differential-privacy budget spent in the window;
- ``off_hours``: jobs outside the hours the scope's purpose implies (``hours:`` in the scope);
- ``download_volume``: many result rows read in the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from policies.model import UsageHours


@dataclass(frozen=True)
class Thresholds:
    """How much of each pattern within ``window`` raises an alert (``Settings.alerts_*``)."""

    window: timedelta = timedelta(hours=1)
    refusals: int = 5
    near_identical: int = 4
    ledger_hits: int = 3
    budget_fraction: float = 0.5
    off_hours_jobs: int = 1
    download_rows: int = 100_000


@dataclass(frozen=True)
class Refusal:
    """A refused request or a rejected job; ``ref`` is the job id or ``"event:<seq>"``."""

    ref: str
    at: datetime


#: A query without its WHERE clause, and that clause's conditions, both normalised (``query_shape``).
Shape = tuple[str, frozenset[str]]


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    at: datetime
    sql: str | None  # None for Python jobs
    rows_withheld_by_ledger: int = 0
    # ``query_shape(sql)`` when the caller already has it (parsing is most of a detection's cost).
    shape: Shape | None = None

    def query_shape(self) -> Shape | None:
        return self.shape if self.shape is not None else query_shape(self.sql)


@dataclass(frozen=True)
class Download:
    job_id: str
    at: datetime
    rows: int
    event_seq: int


@dataclass(frozen=True)
class Charge:
    job_id: str
    at: datetime
    epsilon: float


@dataclass(frozen=True)
class Activity:
    """What one operator did under one scope, newest records within the window the service read."""

    operator: str
    scope: str
    refusals: Sequence[Refusal] = ()
    jobs: Sequence[JobRecord] = ()
    downloads: Sequence[Download] = ()
    charges: Sequence[Charge] = ()
    dp_budget: float | None = None  # the scope's epsilon budget, when it has differential privacy
    hours: UsageHours | None = None


@dataclass(frozen=True)
class Signal:
    rule: str
    message: str
    jobs: tuple[str, ...] = ()
    events: tuple[int, ...] = ()
    figures: dict[str, float] = field(default_factory=dict)


def detect(
    activity: Activity,
    thresholds: Thresholds,
    *,
    now: datetime,
    reported: Mapping[str, datetime] | None = None,
) -> list[Signal]:
    """Every rule's signal for ``activity`` within ``thresholds.window`` before ``now``.

    ``reported`` holds, per rule, when it last raised an alert for this operator and scope: records up
    to then were that alert's evidence, so a rule only looks at what came after (each alert has fresh
    evidence, and one burst raises one alert).

    >>> t = datetime(2026, 3, 2, 10, tzinfo=timezone.utc)
    >>> refusals = [Refusal(f"j{i}", t) for i in range(5)]
    >>> [s.rule for s in detect(Activity("alice", "flu", refusals=refusals), Thresholds(), now=t)]
    ['refusal_burst']
    >>> activity = Activity("alice", "flu", refusals=refusals)
    >>> detect(activity, Thresholds(), now=t, reported={"refusal_burst": t})
    []
    """
    signals: list[Signal] = []
    for rule in RULES:
        since = now - thresholds.window
        last = (reported or {}).get(rule.__name__)
        recent = _between(activity, since, now, after=last)
        signals.extend(rule(recent, thresholds))
    return signals


def _between(activity: Activity, since: datetime, now: datetime, *, after: datetime | None) -> Activity:
    def keep(at: datetime) -> bool:
        return since <= at <= now and (after is None or at > after)

    return Activity(
        operator=activity.operator,
        scope=activity.scope,
        refusals=[r for r in activity.refusals if keep(r.at)],
        jobs=[j for j in activity.jobs if keep(j.at)],
        downloads=[d for d in activity.downloads if keep(d.at)],
        charges=[c for c in activity.charges if keep(c.at)],
        dp_budget=activity.dp_budget,
        hours=activity.hours,
    )


def refusal_burst(activity: Activity, thresholds: Thresholds) -> Iterator[Signal]:
    refusals = activity.refusals
    if len(refusals) < thresholds.refusals:
        return
    yield Signal(
        "refusal_burst",
        f"{activity.operator} was refused {len(refusals)} times under scope {activity.scope!r} within "
        f"{_minutes(thresholds)} (threshold {thresholds.refusals})",
        jobs=tuple(r.ref for r in refusals if not r.ref.startswith("event:")),
        events=tuple(int(r.ref.removeprefix("event:")) for r in refusals if r.ref.startswith("event:")),
        figures={"refusals": len(refusals)},
    )


def near_identical_queries(activity: Activity, thresholds: Thresholds) -> Iterator[Signal]:
    shapes = [(job.job_id, shape) for job in activity.jobs if (shape := job.query_shape()) is not None]
    involved = set(near_identical(shapes))
    if len(involved) < thresholds.near_identical:
        return
    jobs = tuple(j.job_id for j in activity.jobs if j.job_id in involved)
    yield Signal(
        "near_identical_queries",
        f"{len(jobs)} queries by {activity.operator} under scope {activity.scope!r} differ from another "
        f"only by one WHERE condition within {_minutes(thresholds)} (threshold {thresholds.near_identical})",
        jobs=jobs,
        figures={"queries": len(jobs)},
    )


def near_identical(shapes: Sequence[tuple[str, Shape]]) -> list[str]:
    """The ids whose query differs from another's by one condition (``differ_by_one_condition``).

    Indexed rather than compared pair by pair (a window may hold hundreds of queries): two queries
    differ by one *replaced* condition when removing one condition from each leaves the same query, and
    by one *added* condition when removing one from the longer leaves the shorter.

    >>> near_identical([("a", ("q", frozenset({"x = 1"}))), ("b", ("q", frozenset({"x = 2"}))),
    ...                 ("c", ("q", frozenset({"x = 1"}))), ("d", ("r", frozenset({"x = 3"})))])
    ['a', 'b', 'c']
    """
    whole: dict[Shape, list[str]] = {}
    less_one: dict[Shape, list[tuple[str, Shape]]] = {}
    for job_id, shape in shapes:
        skeleton, conditions = shape
        whole.setdefault(shape, []).append(job_id)
        for condition in conditions:
            less_one.setdefault((skeleton, conditions - {condition}), []).append((job_id, shape))
    involved: set[str] = set()
    for key, members in less_one.items():
        if len({shape for _, shape in members}) > 1:  # replaced: not all the same query
            involved.update(job_id for job_id, _ in members)
        shorter = whole.get(key)
        if shorter:  # added or dropped: the query without that condition was run too
            involved.update(shorter)
            involved.update(job_id for job_id, _ in members)
    return sorted(involved)


def ledger_hits(activity: Activity, thresholds: Thresholds) -> Iterator[Signal]:
    hit = [j for j in activity.jobs if j.rows_withheld_by_ledger > 0]
    rows = sum(j.rows_withheld_by_ledger for j in hit)
    if rows < thresholds.ledger_hits:
        return
    yield Signal(
        "ledger_hits",
        f"the released-cohort ledger withheld {rows} rows from {len(hit)} jobs of {activity.operator} "
        f"under scope {activity.scope!r} within {_minutes(thresholds)} (threshold {thresholds.ledger_hits})",
        jobs=tuple(j.job_id for j in hit),
        figures={"rows_withheld_by_ledger": rows},
    )


def budget_burn(activity: Activity, thresholds: Thresholds) -> Iterator[Signal]:
    if not activity.dp_budget or not activity.charges:
        return
    spent = sum(c.epsilon for c in activity.charges)
    share = spent / activity.dp_budget
    if share < thresholds.budget_fraction:
        return
    yield Signal(
        "budget_burn",
        f"{activity.operator} spent epsilon {spent:g} of scope {activity.scope!r}'s budget "
        f"{activity.dp_budget:g} ({share:.0%}) within {_minutes(thresholds)} "
        f"(threshold {thresholds.budget_fraction:.0%})",
        jobs=tuple(c.job_id for c in activity.charges),
        figures={"epsilon": spent, "share": round(share, 6)},
    )


def off_hours(activity: Activity, thresholds: Thresholds) -> Iterator[Signal]:
    hours = activity.hours
    if hours is None:
        return
    outside = [j for j in activity.jobs if not within_hours(j.at, hours)]
    if len(outside) < thresholds.off_hours_jobs:
        return
    yield Signal(
        "off_hours",
        f"{len(outside)} jobs of {activity.operator} under scope {activity.scope!r} ran outside the hours "
        f"its purpose implies ({hours.start:02d}:00-{hours.end:02d}:00, days {list(hours.weekdays)}, UTC"
        f"{hours.utc_offset_minutes:+d} min)",
        jobs=tuple(j.job_id for j in outside),
        figures={"jobs": len(outside)},
    )


def download_volume(activity: Activity, thresholds: Thresholds) -> Iterator[Signal]:
    rows = sum(d.rows for d in activity.downloads)
    if rows < thresholds.download_rows:
        return
    yield Signal(
        "download_volume",
        f"{activity.operator} read {rows} result rows under scope {activity.scope!r} within "
        f"{_minutes(thresholds)} (threshold {thresholds.download_rows})",
        jobs=tuple(dict.fromkeys(d.job_id for d in activity.downloads)),
        events=tuple(d.event_seq for d in activity.downloads),
        figures={"rows": rows, "reads": len(activity.downloads)},
    )


RULES: tuple[Callable[[Activity, Thresholds], Iterator[Signal]], ...] = (
    refusal_burst,
    near_identical_queries,
    ledger_hits,
    budget_burn,
    off_hours,
    download_volume,
)


def within_hours(at: datetime, hours: UsageHours) -> bool:
    """Whether ``at`` falls inside ``hours`` (local to the hours' UTC offset).

    >>> h = UsageHours(start=8, end=18, utc_offset_minutes=480)
    >>> within_hours(datetime(2026, 3, 2, 1, 30, tzinfo=timezone.utc), h)  # Monday 09:30 at UTC+8
    True
    >>> within_hours(datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc), h)  # Monday 20:00 at UTC+8
    False
    """
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    local = aware.astimezone(timezone(timedelta(minutes=hours.utc_offset_minutes)))
    return local.isoweekday() in hours.weekdays and hours.start <= local.hour < hours.end


def query_shape(sql: str | None) -> Shape | None:
    """The query without its WHERE clause, and the WHERE clause's conditions, both normalised.

    Two queries with the same skeleton whose conditions differ by one are the two halves of a
    differencing attack. None for what does not parse as one statement (it was refused anyway).

    >>> skeleton, conditions = query_shape("select count(*) from t where a = 1 and B = 'x'")
    >>> skeleton, sorted(conditions)
    ('SELECT COUNT(*) FROM t', ['a = 1', "b = 'x'"])
    """
    if not sql:
        return None
    try:
        statements = sqlglot.parse(sql, dialect="duckdb")
    except SqlglotError:
        return None
    if len(statements) != 1 or statements[0] is None:
        return None
    tree = statements[0]
    conditions: frozenset[str] = frozenset()
    where = tree.args.get("where")
    if isinstance(where, exp.Where):
        conditions = frozenset(_normalised(c) for c in _conjuncts(where.this))
        tree = tree.copy()
        tree.set("where", None)
    return _normalised(tree), conditions


def differ_by_one_condition(a: frozenset[str], b: frozenset[str]) -> bool:
    """One condition added, dropped or replaced (never equal sets: a repeat is not a probe).

    >>> differ_by_one_condition(frozenset({"a = 1"}), frozenset({"a = 2"}))
    True
    >>> differ_by_one_condition(frozenset({"a = 1"}), frozenset({"a = 1", "b = 2"}))
    True
    >>> differ_by_one_condition(frozenset({"a = 1", "c = 3"}), frozenset({"a = 2", "b = 2"}))
    False
    """
    only_a, only_b = a - b, b - a
    return (len(only_a), len(only_b)) in {(1, 1), (1, 0), (0, 1)}


def _conjuncts(node: exp.Expr) -> Iterable[exp.Expr]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        yield from _conjuncts(node.left)
        yield from _conjuncts(node.right)
    else:
        yield node


def _normalised(node: exp.Expr) -> str:
    # Identifiers lower-cased (DuckDB resolves them case-insensitively); literals kept as written.
    return node.sql(dialect="duckdb", normalize=True)


def _minutes(thresholds: Thresholds) -> str:
    return f"{int(thresholds.window.total_seconds() // 60)} minutes"
