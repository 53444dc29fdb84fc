"""A job service's dependencies and the one function that changes a job's state.

``JobTransitions.advance`` is the only code that changes a job's state, and it appends the audit event
in the same transaction, so the log and the job table can never disagree. Every part of ``JobService``
(``services/jobs.py``: submission, reads, cancellation) builds on this class and moves jobs only
through ``advance``; so do the runner, the review and the recovery.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from sandbox_api.clock import Clock
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.services.catalog import CatalogService
from sandbox_api.server.services.cohort_ledger import CohortLedger
from sandbox_api.server.services.dp_budget import DpBudgetService
from sandbox_api.server.services.job_signals import JobSignals
from sandbox_api.server.services.job_states import TERMINAL, JobState, require_transition
from sandbox_api.server.services.job_views import CommittedJob, job_view, never_charged
from sandbox_api.server.services.policy_catalog import PolicyContexts
from sandbox_api.server.services.quotas import LongPolls, QuotaLimits
from sandbox_api.server.services.receipts import ReceiptService
from sandbox_api.server.services.release import ReleaseFn, release
from sandbox_api.server.services.scopes import ScopeService
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import JobRow

# States in which a waiting client stops waiting: final ones, and withheld (only a person moves it on).
SETTLED: frozenset[JobState] = TERMINAL | {JobState.WITHHELD}
#: Called by ``advance`` with the session, the row (already moved), the state it left, the state it
#: entered and the transition's details.
TransitionObserver = Callable[[Session, JobRow, JobState, JobState, Mapping[str, object]], None]
#: Ends without a release: a differential-privacy charge taken at submit is given back.
_REFUNDED = frozenset({JobState.FAILED, JobState.CANCELLED, JobState.REJECTED})


@dataclass(frozen=True)
class JobTransitions:
    """What every part of the job service shares, and ``advance``."""

    db: Database
    audit: AuditLog
    clock: Clock
    catalog: CatalogService
    scopes: ScopeService
    results_key: bytes
    queue_limit: int
    wake: threading.Event
    # Per-principal quotas and the fair claim order (services/quotas.py).
    quotas: QuotaLimits = field(default_factory=QuotaLimits)
    # Long-polls open per principal (each holds a request): counted here, capped by ``quotas``.
    long_polls: LongPolls = field(default_factory=LongPolls)
    # Signs a receipt inside every release transaction (None only in tests of the layers below).
    receipts: ReceiptService | None = None
    # The one release function every settlement goes through (services/release.py); a test build of
    # the services passes a wrapper that counts what went through it.
    release: ReleaseFn = release
    # The released-cohort ledger every SQL release of a scope without differential privacy is checked
    # against (services/cohort_ledger.py); None only in tests of the layers below.
    ledger: CohortLedger | None = None
    contexts: PolicyContexts = field(default_factory=PolicyContexts)
    # The differential-privacy budget (services/dp_budget.py): charged at submit for real SQL jobs
    # under a DP scope, refunded when such a job fails, is cancelled or rejected. None: no DP scopes.
    budget: DpBudgetService | None = None
    # Wakes long-polls once a transition has committed (``advance`` marks the job on the session).
    signals: JobSignals[CommittedJob] = field(default_factory=JobSignals)
    # Told of every transition inside its transaction (metrics and traces: server/observability/); it
    # must defer anything that should only count once the transaction commits.
    observer: TransitionObserver | None = None

    # --- the one transition function ---------------------------------------------------------
    def advance(
        self,
        session: Session,
        row: JobRow,
        to: JobState,
        *,
        actor: str,
        reason: str,
        details: Mapping[str, object] | None = None,
    ) -> bool:
        """Move ``row`` to ``to`` and log it in the caller's transaction; False if it already was there.

        Clients waiting on the job are woken once that transaction commits (never before) if ``to`` is
        a state their wait ends in.
        """
        current = JobState(row.state)
        if current is to:
            return False
        require_transition(row.id, current, to)
        row.state, row.reason, row.updated_at = to.value, reason, self.clock.now()
        event = "job.requeued" if (current, to) == (JobState.RUNNING, JobState.QUEUED) else f"job.{to.value}"
        self.audit.append(
            session,
            event=event,
            actor=actor,
            details={"job": row.id, "from": current.value, "reason": reason, **(details or {})},
        )
        if self.budget is not None and to in _REFUNDED:
            # In the transition's own transaction: the budget comes back exactly when the job ends
            # without a release (nothing to refund for a job that was never charged).
            self.budget.refund_in(session, job_id=row.id, reason=f"job {to.value}: {reason}", actor=actor)
        if self.observer is not None:
            self.observer(session, row, current, to, details or {})
        if to in SETTLED:
            # Only the states a waiting client stops at: a wake-up for any other would make the waiter
            # re-read the job (in the middle of the runner's work) and wait again.
            self.signals.notify_after_commit(session, row.id, lambda: self._committed(row))
        return True

    def _committed(self, row: JobRow) -> CommittedJob:
        """What a long-poll of ``row`` is handed after the commit (built only if one waits); it says
        whether a budget read is needed: a job never charged needs none."""
        return CommittedJob(job_view(row), charged=self.budget is not None and not never_charged(row))
