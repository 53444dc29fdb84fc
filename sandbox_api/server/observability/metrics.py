"""Prometheus metrics: one registry per gateway (never the library's global one).

Two sources, for two kinds of fact:

- **Counted as they happen** in this gateway (counters and histograms): rejections by rule, job phase
  latencies, settled jobs, HTTP requests. Each gateway counts its own; Prometheus sums them.
- **Read from the database at scrape time** (gauges): jobs by state and kind, the queue's depth, the
  differential-privacy budget spent per scope. They describe the whole deployment, so every gateway on
  one database reports the same value (aggregate them with ``max``, not ``sum``).

Sandboxes ready is the executor's own count (warm sandbox processes of the local executor).

Nothing here carries a value from a dataset or a result: labels are states, kinds, phases, rule names,
scope names and route templates, and the route of a request is its template (``/v1/jobs/{job_id}``), so
no id reaches a label.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol, runtime_checkable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from sandbox_api.job_types import Kind
from sandbox_api.server.services.job_states import TERMINAL, JobState
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import DpLedgerRow, JobRow

#: Seconds; from a warm small job (tens of ms) to a job at a long time limit.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: Phases a settled job reports: ``queue`` (submitted to claimed), the sandbox's own steps, ``execute``
#: (claimed to result, the steps included), ``check`` (the release decision) and ``total`` (submitted
#: to settled).
SANDBOX_PHASES: Final = ("unwrap", "decrypt", "load", "query", "serialize")
#: Epsilon and delta are stored as integers in these units (``store/models.DpLedgerRow``).
EPSILON_UNIT: Final = 1e-9
DELTA_UNIT: Final = 1e-18
log = logging.getLogger(__name__)
#: Where a job's way ends, or pauses for a person (withheld, then released or denied by review: each
#: counted under its state).
_SETTLED = (TERMINAL - {JobState.REJECTED}) | {JobState.WITHHELD}


@runtime_checkable
class HasWarmSandboxes(Protocol):
    """An executor that keeps sandbox processes ready ahead of their jobs (``executors.local``)."""

    def warm_sandboxes(self) -> tuple[int, ...]: ...


class DeploymentCollector(Collector):
    """The gauges read at scrape time: two short queries on the metadata database and the executor."""

    def __init__(self, db: Database, *, executor: object) -> None:
        self._db = db
        self._executor = executor

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("sandbox_jobs", "Jobs in each state, by kind", labels=["state", "kind"])
        spent_epsilon = GaugeMetricFamily(
            "sandbox_dp_budget_spent_epsilon",
            "Differential-privacy epsilon spent, all grantees and periods, by scope",
            labels=["scope"],
        )
        spent_delta = GaugeMetricFamily(
            "sandbox_dp_budget_spent_delta",
            "Differential-privacy delta spent, all grantees and periods, by scope",
            labels=["scope"],
        )
        with self._db.read() as session:
            counts = session.execute(
                select(JobRow.state, JobRow.kind, func.count()).group_by(JobRow.state, JobRow.kind)
            ).all()
            budgets = session.execute(
                select(
                    DpLedgerRow.scope_name,
                    func.sum(DpLedgerRow.spent_epsilon),
                    func.sum(DpLedgerRow.spent_delta),
                ).group_by(DpLedgerRow.scope_name)
            ).all()
        seen = {(str(state), str(kind)): int(n) for state, kind, n in counts}
        for state in JobState:
            for kind in sorted({k for _, k in seen} | {kind.value for kind in Kind}):
                jobs.add_metric([state.value, kind], seen.get((state.value, kind), 0))
        queued = sum(n for (state, _), n in seen.items() if state == JobState.QUEUED.value)
        yield jobs
        yield GaugeMetricFamily("sandbox_queue_depth", "Jobs waiting for a runner slot", value=queued)
        for scope, epsilon, delta in budgets:
            spent_epsilon.add_metric([str(scope)], int(epsilon or 0) * EPSILON_UNIT)
            spent_delta.add_metric([str(scope)], int(delta or 0) * DELTA_UNIT)
        yield spent_epsilon
        yield spent_delta
        if isinstance(self._executor, HasWarmSandboxes):
            yield GaugeMetricFamily(
                "sandbox_sandboxes_ready",
                "Warm sandbox processes waiting for a job",
                value=len(self._executor.warm_sandboxes()),
            )


@dataclass(frozen=True)
class Metrics:
    """This gateway's registry and the instruments the job path and the HTTP layer record into."""

    registry: CollectorRegistry
    rejections: Counter
    phases: Histogram
    settled: Counter
    requests: Counter
    clock: Callable[[], datetime]

    @classmethod
    def create(cls, db: Database, *, executor: object, clock: Callable[[], datetime]) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        registry.register(DeploymentCollector(db, executor=executor))
        return cls(
            registry=registry,
            rejections=Counter(
                "sandbox_rejections",
                "Rules that refused a submitted job (a job refused by several rules counts for each)",
                ["rule"],
                registry=registry,
            ),
            phases=Histogram(
                "sandbox_job_phase_seconds",
                "Time a job spent in each phase, by kind",
                ["phase", "kind"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            settled=Counter(
                "sandbox_jobs_settled",
                "Jobs that ended (or were withheld), by final state and kind",
                ["state", "kind"],
                registry=registry,
            ),
            requests=Counter(
                "sandbox_http_requests",
                "HTTP requests answered, by method, route template and status",
                ["method", "route", "status"],
                registry=registry,
            ),
            clock=clock,
        )

    # --- the job path (JobService's transition observer) --------------------------------------
    def transition(
        self, session: Session, row: JobRow, current: JobState, to: JobState, details: Mapping[str, object]
    ) -> None:
        """Record what a transition says, once its transaction commits (a rollback records nothing)."""
        kind = row.kind or "sql"
        if to is JobState.REJECTED:
            rules = [str(rule) for rule in details.get("findings") or ()]  # type: ignore[attr-defined]
            after_commit(session, lambda: self._rejected(rules))
        elif to is JobState.RUNNING and current is JobState.QUEUED:
            waited = _seconds_between(row.created_at, self.clock())
            after_commit(session, lambda: self.phases.labels(phase="queue", kind=kind).observe(waited))
        elif to in _SETTLED:
            # Phases only from the runner's settlement (out of checking): a review's later release or
            # denial has no phases of its own.
            stored = (row.timings or {}) if current is JobState.CHECKING else {}
            timings = {k: float(v) for k, v in stored.items() if isinstance(v, int | float)}
            total = _seconds_between(row.created_at, self.clock())
            after_commit(session, lambda: self._settled(kind, to, timings, total))

    def _rejected(self, rules: list[str]) -> None:
        for rule in rules:
            self.rejections.labels(rule=rule).inc()

    def _settled(self, kind: str, to: JobState, timings: Mapping[str, float], total: float) -> None:
        self.settled.labels(state=to.value, kind=kind).inc()
        if not timings:
            return
        for phase in SANDBOX_PHASES:
            if phase in timings:
                self.phases.labels(phase=phase, kind=kind).observe(timings[phase])
        for phase in ("execute", "check"):
            if f"{phase}_s" in timings:
                self.phases.labels(phase=phase, kind=kind).observe(timings[f"{phase}_s"])
        if to in {JobState.RELEASED, JobState.WITHHELD}:
            self.phases.labels(phase="total", kind=kind).observe(total)


def after_commit(session: Session, action: Callable[[], object]) -> None:
    """Run ``action`` once ``session``'s transaction has committed; never on rollback.

    Like ``services/job_signals``: the hooks are registered once per session, on that session alone.
    """
    pending: list[Callable[[], object]] | None = session.info.get(after_commit)
    if pending is None:
        pending = []
        session.info[after_commit] = pending
        event.listen(session, "after_commit", _run_pending)
        event.listen(session, "after_rollback", _drop_pending)
    pending.append(action)


def _run_pending(session: Session) -> None:
    actions: list[Callable[[], object]] = session.info.get(after_commit) or []
    session.info[after_commit] = []
    for action in actions:
        try:
            action()
        except Exception as exc:  # a metric must never fail the thread that committed
            log.warning("recording a metric failed: %s", type(exc).__name__)


def _drop_pending(session: Session) -> None:
    session.info[after_commit] = []


def _seconds_between(start: datetime, end: datetime) -> float:
    """Seconds from ``start`` to ``end``; SQLite hands back naive UTC datetimes."""
    aware = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    return max(0.0, (end - aware).total_seconds())


class MetricsPort:
    """The registry served without a token on ``127.0.0.1:<port>`` (setting ``metrics_port``)."""

    def __init__(self, registry: CollectorRegistry, *, port: int) -> None:
        server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
