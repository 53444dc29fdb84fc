"""Alerts on unusual use: watch what the service records, raise alerts for auditors with their evidence.

The audit log tells this service of every committed event (``AuditLog.watch``); refusals, job
submissions, releases and result reads put the operator and scope they concern on a queue, and one
background thread runs the rules (``policies/usage_alerts.py``) over a bounded read of that operator's
recent records. So a request or a job pays only for putting a key on a queue.

An alert is a row and an ``alert.raised`` audit event, both naming the evidence (job ids and audit event
numbers). Optionally the operator is suspended in the same transaction (disabled as an admin would; an
admin enables them again after review), and the alert is posted as JSON to a webhook.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crypto.audit import AuditEntry
from policies.errors import PolicyError
from policies.usage_alerts import (
    Activity,
    Charge,
    Download,
    JobRecord,
    Refusal,
    Shape,
    Signal,
    Thresholds,
    detect,
    query_shape,
)
from sandbox_api.clock import Clock, iso
from sandbox_api.errors import Conflict, InvalidInput, NotFound, ServiceError
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.services.scopes import ScopeService
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import (
    AuditEventRow,
    DpChargeRow,
    DpLedgerRow,
    JobRow,
    PrincipalRow,
    ResultRow,
    UsageAlertRow,
)

log = logging.getLogger(__name__)

#: The actor of alerts and of the suspensions they cause, in the audit log.
ALERTS_ACTOR = "alerts"
OPEN, ACKNOWLEDGED = "open", "acknowledged"
#: Job events that concern the job's owner and scope: a refusal, a job's end, a read of its result.
#: (Not the submission: whatever a rule sees in a job it still sees when the job ends.)
JOB_EVENTS = frozenset({"job.rejected", "job.released", "job.withheld", "job.failed", "job.result.read"})
#: ε is stored in units of 1e-9 (services/dp_budget.py).
EPSILON_UNIT = 1e-9

#: Suspends an operator inside the alert's transaction; returns what to do once it committed.
Suspend = Callable[[Session, str], Callable[[], None]]
#: Posts one alert's JSON somewhere (the webhook); raises on failure.
Post = Callable[[str, bytes], None]


@dataclass(frozen=True)
class AlertView:
    id: str
    rule: str
    operator: str
    scope: str
    message: str
    evidence: dict[str, Any]
    state: str
    suspended: bool
    created_at: str
    acknowledged_by: str | None
    acknowledged_at: str | None
    note: str


def post_json(url: str, body: bytes) -> None:
    """POST ``body`` to ``url`` as JSON (the webhook); an answer other than 2xx raises."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise ValueError("the alert webhook must be an http or https URL")
    headers = {"Content-Type": "application/json"}
    # The scheme is checked above; the URL is the deployment's own setting.
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
        if not 200 <= answer.status < 300:
            raise OSError(f"webhook answered {answer.status}")


@dataclass(frozen=True)
class AlertService:
    db: Database
    audit: AuditLog
    clock: Clock
    scopes: ScopeService
    thresholds: Thresholds = field(default_factory=Thresholds)
    # How many records of each kind one detection reads at most (the newest): bounds its cost.
    history: int = 200
    webhook_url: str | None = None
    suspend: Suspend | None = None  # None: alerts never suspend
    post: Post = post_json
    # How long the worker lets events pile up before it looks (seconds): alerts come this much later.
    debounce_s: float = 0.05
    _queue: queue.Queue[tuple[str, str] | None] = field(
        default_factory=queue.Queue, compare=False, repr=False
    )
    _worker: list[threading.Thread] = field(default_factory=list, compare=False, repr=False)
    # Query shapes by job id (parsing is most of a detection's cost, and a job's SQL never changes);
    # bounded to a few windows' worth of jobs, oldest dropped first.
    _shapes: dict[str, Shape | None] = field(default_factory=dict, compare=False, repr=False)

    # --- watching --------------------------------------------------------------------------------
    def notice(self, entry: AuditEntry) -> None:
        """An audit watcher: queue the operator and scope a committed event concerns (nothing else)."""
        if not self._worker:
            return  # nobody would look (services built without the gateway's lifespan): keep nothing
        if entry.event == "request.denied":
            scope = entry.details.get("scope")
            self._queue.put((entry.actor, str(scope) if scope else ""))
        elif entry.event in JOB_EVENTS and isinstance(entry.details.get("job"), str):
            self._queue.put(("job", str(entry.details["job"])))

    def start(self) -> None:
        if self._worker:
            return
        thread = threading.Thread(target=self._run, name="usage-alerts", daemon=True)
        self._worker.append(thread)
        thread.start()

    def stop(self) -> None:
        if self._worker:
            self._queue.put(None)
            self._worker.pop().join(timeout=10)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Whether every noticed event has been looked at within ``timeout_s`` (shutdown, tests)."""
        done = threading.Event()

        def join() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=join, daemon=True).start()
        return done.wait(timeout_s)

    def _run(self) -> None:
        while True:
            key = self._queue.get()
            try:
                if key is None:
                    return
                # A short pause lets a burst of events (one job's end and its result read, a flurry of
                # refusals) pile up, so each operator and scope is looked at once for all of them and
                # the detections compete less with the requests for the interpreter and the database.
                time.sleep(self.debounce_s)
                keys = {key}
                while True:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._queue.put(None)
                        self._queue.task_done()
                        break
                    keys.add(more)
                    self._queue.task_done()
                for operator, scope in self._resolve(keys):
                    self.detect(operator, scope)
            except Exception:  # one bad detection must not stop watching
                log.exception("alert detection failed")
            finally:
                self._queue.task_done()

    def _resolve(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """(operator, scope) pairs: a ``("job", id)`` key becomes the job's owner and scope."""
        found: set[tuple[str, str]] = set()
        job_ids = [value for kind, value in keys if kind == "job"]
        found |= {(kind, value) for kind, value in keys if kind != "job"}
        if job_ids:
            with self.db.read() as session:
                rows = session.execute(select(JobRow.owner, JobRow.scope).where(JobRow.id.in_(job_ids))).all()
            found |= {(owner, scope) for owner, scope in rows}
        return found

    # --- detecting -------------------------------------------------------------------------------
    def detect(self, operator: str, scope: str) -> list[AlertView]:
        """Run every rule over ``operator``'s recent records under ``scope``; store what they raise."""
        now = self.clock.now()
        with self.db.read() as session:
            role = session.execute(select(PrincipalRow.role).where(PrincipalRow.name == operator)).scalar()
            if role != "operator":
                return []
            activity = self._activity(session, operator, scope, since=now - self.thresholds.window)
            reported = self._reported(session, operator, scope)
        signals = detect(activity, self.thresholds, now=now, reported=reported)
        if not signals:
            return []
        return self._raise(operator, scope, signals)

    def _activity(self, session: Session, operator: str, scope: str, *, since: datetime) -> Activity:
        limit = self.history
        jobs = session.execute(
            select(JobRow.id, JobRow.created_at, JobRow.sql, JobRow.kind, JobRow.state, JobRow.mode)
            .where(JobRow.owner == operator, JobRow.scope == scope, JobRow.created_at >= since)
            .order_by(JobRow.created_at.desc())
            .limit(limit)
        ).all()
        reports: dict[str, Any] = dict(
            session.execute(
                select(ResultRow.job_id, ResultRow.report).where(ResultRow.job_id.in_([j.id for j in jobs]))
            ).all()
        )
        records = [
            JobRecord(
                job_id=j.id,
                at=_aware(j.created_at),
                sql=j.sql if j.kind == "sql" else None,
                rows_withheld_by_ledger=int((reports.get(j.id) or {}).get("rows_withheld_by_ledger") or 0),
                shape=self._shape(j.id, j.sql if j.kind == "sql" else None),
            )
            for j in jobs
            if j.state != "rejected" and j.mode == "real"
        ]
        refusals = [Refusal(j.id, _aware(j.created_at)) for j in jobs if j.state == "rejected"]
        for seq, at, details in self._events(session, "request.denied", operator, since=since):
            if (details.get("scope") or "") == scope:
                refusals.append(Refusal(f"event:{seq}", at))
        return Activity(
            operator=operator,
            scope=scope,
            refusals=refusals,
            jobs=records,
            downloads=self._downloads(session, operator, scope, since=since),
            charges=self._charges(session, operator, scope, since=since),
            dp_budget=self._budget(scope),
            hours=self._hours(scope),
        )

    def _shape(self, job_id: str, sql: str | None) -> Shape | None:
        if job_id not in self._shapes:
            if len(self._shapes) >= 4 * self.history:
                for old in list(self._shapes)[: self.history]:
                    del self._shapes[old]
            self._shapes[job_id] = query_shape(sql)
        return self._shapes[job_id]

    def _events(
        self, session: Session, event: str, actor: str, *, since: datetime
    ) -> list[tuple[int, datetime, Mapping[str, Any]]]:
        rows = session.execute(
            select(AuditEventRow.seq, AuditEventRow.at, AuditEventRow.details)
            .where(AuditEventRow.event == event, AuditEventRow.actor == actor)
            .order_by(AuditEventRow.seq.desc())
            .limit(self.history)
        ).all()
        found = [(seq, datetime.fromisoformat(at), dict(details)) for seq, at, details in rows]
        return [(seq, at, details) for seq, at, details in found if at >= since]

    def _downloads(self, session: Session, operator: str, scope: str, *, since: datetime) -> list[Download]:
        reads = self._events(session, "job.result.read", operator, since=since)
        ids = {str(details.get("job")) for _, _, details in reads}
        if not ids:
            return []
        rows = dict(
            session.execute(
                select(ResultRow.job_id, ResultRow.row_count)
                .join(JobRow, JobRow.id == ResultRow.job_id)
                .where(ResultRow.job_id.in_(ids), JobRow.scope == scope)
            ).all()
        )
        return [
            Download(job_id=str(d.get("job")), at=at, rows=int(rows[str(d.get("job"))]), event_seq=seq)
            for seq, at, d in reads
            if str(d.get("job")) in rows
        ]

    def _charges(self, session: Session, operator: str, scope: str, *, since: datetime) -> list[Charge]:
        rows = session.execute(
            select(DpChargeRow.job_id, DpChargeRow.charged_at, DpChargeRow.epsilon)
            .join(DpLedgerRow, DpLedgerRow.id == DpChargeRow.ledger_id)
            .where(
                DpLedgerRow.grantee == operator,
                DpLedgerRow.scope_name == scope,
                DpChargeRow.charged_at >= since,
                DpChargeRow.refunded_at.is_(None),
            )
            .order_by(DpChargeRow.charged_at.desc())
            .limit(self.history)
        ).all()
        return [Charge(job_id, _aware(at), epsilon * EPSILON_UNIT) for job_id, at, epsilon in rows]

    def _budget(self, scope: str) -> float | None:
        active = self._active(scope)
        dp = None if active is None else active.disclosure.dp
        return None if dp is None else float(dp.budget)

    def _hours(self, scope: str) -> Any:
        active = self._active(scope)
        return None if active is None else active.hours

    def _active(self, scope: str) -> Any:
        if not scope:
            return None
        try:
            return self.scopes.active(scope).scope
        except (ServiceError, PolicyError):  # not active now: its budget and hours no longer apply
            return None

    @staticmethod
    def _reported(session: Session, operator: str, scope: str) -> dict[str, datetime]:
        rows = session.execute(
            select(UsageAlertRow.rule, func.max(UsageAlertRow.created_at))
            .where(UsageAlertRow.operator == operator, UsageAlertRow.scope == scope)
            .group_by(UsageAlertRow.rule)
        ).all()
        return {rule: _aware(at) for rule, at in rows}

    # --- raising ---------------------------------------------------------------------------------
    def _raise(self, operator: str, scope: str, signals: list[Signal]) -> list[AlertView]:
        after: list[Callable[[], None]] = []
        with self.db.write() as session:
            views = []
            suspended = False
            if self.suspend is not None:
                row = session.get(PrincipalRow, operator)
                if row is not None and row.disabled_at is None:
                    after.append(self.suspend(session, operator))
                    suspended = True
            for signal in signals:
                alert = UsageAlertRow(
                    id=uuid.uuid4().hex,
                    rule=signal.rule,
                    operator=operator,
                    scope=scope,
                    message=signal.message,
                    evidence={
                        "jobs": list(signal.jobs),
                        "events": list(signal.events),
                        "figures": dict(signal.figures),
                    },
                    state=OPEN,
                    suspended=suspended,
                    created_at=self.clock.now(),
                    note="",
                )
                session.add(alert)
                self.audit.append(
                    session,
                    event="alert.raised",
                    actor=ALERTS_ACTOR,
                    details={
                        "alert": alert.id,
                        "rule": signal.rule,
                        "operator": operator,
                        "scope": scope,
                        "message": signal.message,
                        **alert.evidence,
                        "suspended": suspended,
                    },
                )
                views.append(_view(alert))
        for step in after:
            step()
        if self.webhook_url is not None:
            for view in views:
                self._deliver(self.webhook_url, view)
        return views

    def _deliver(self, url: str, view: AlertView) -> None:
        body = json.dumps({"type": "data-sandbox/alert", **_as_json(view)}, sort_keys=True).encode()
        try:
            self.post(url, body)
        except Exception as exc:  # the alert stands in the API; the failed delivery is audited
            self.audit.record(
                event="alert.webhook.failed",
                actor=ALERTS_ACTOR,
                details={"alert": view.id, "error": type(exc).__name__},
            )

    # --- reading and acknowledging ---------------------------------------------------------------
    def list_alerts(self, *, state: str | None = None, operator: str | None = None) -> list[AlertView]:
        with self.db.read() as session:
            query = select(UsageAlertRow).order_by(UsageAlertRow.created_at.desc()).limit(1000)
            if state is not None:
                query = query.where(UsageAlertRow.state == state)
            if operator is not None:
                query = query.where(UsageAlertRow.operator == operator)
            return [_view(row) for row in session.execute(query).scalars()]

    def acknowledge(self, *, actor: str, alert_id: str, note: str) -> AlertView:
        if not note.strip():
            raise InvalidInput("acknowledging an alert needs a note: what was looked at, what was decided")
        with self.db.write() as session:
            row = session.get(UsageAlertRow, alert_id, with_for_update=True)
            if row is None:
                raise NotFound(f"alert {alert_id} does not exist")
            if row.state == ACKNOWLEDGED:
                raise Conflict(f"alert {alert_id} was acknowledged by {row.acknowledged_by} already")
            row.state, row.note = ACKNOWLEDGED, note
            row.acknowledged_by, row.acknowledged_at = actor, self.clock.now()
            self.audit.append(
                session,
                event="alert.acknowledged",
                actor=actor,
                details={"alert": row.id, "rule": row.rule, "operator": row.operator, "note": note},
            )
            return _view(row)


def _aware(at: datetime) -> datetime:
    # SQLite hands back naive datetimes; the service stores UTC.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _view(row: UsageAlertRow) -> AlertView:
    return AlertView(
        id=row.id,
        rule=row.rule,
        operator=row.operator,
        scope=row.scope,
        message=row.message,
        evidence=dict(row.evidence),
        state=row.state,
        suspended=bool(row.suspended),
        created_at=iso(_aware(row.created_at)),
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=None if row.acknowledged_at is None else iso(_aware(row.acknowledged_at)),
        note=row.note,
    )


def _as_json(view: AlertView) -> dict[str, Any]:
    return {name: getattr(view, name) for name in AlertView.__dataclass_fields__}
