"""Jobs: dry run, submission, the one state-transition function, results, cancellation, recovery.

``JobService`` is one object (the app, the runner, the review and the replay hold it), assembled from
one module per responsibility, each a part of it that builds on ``JobTransitions``:

* ``job_transitions.py``: the shared dependencies and ``advance``, the only code that changes a job's
  state; it appends the audit event in the same transaction, so the log and the job table can never
  disagree.
* ``job_submission.py``: ``dry_run`` and ``submit``.
* ``job_queries.py``: ``get``, the long-poll ``wait``, ``list_jobs``, ``result`` and ``queued_count``.
* ``job_cancellation.py``: ``cancel`` and ``settle_for_disabled``.
* ``job_views.py``: ``JobView`` and ``ResultView``, and who may read which job.

Callers import every name from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox_api.server.services.job_cancellation import DisabledOwnerJobs, JobCancellation
from sandbox_api.server.services.job_queries import WAIT_RECHECK_MAX_S, WAIT_RECHECK_S, JobQueries
from sandbox_api.server.services.job_submission import RETRY_AFTER_S, JobSubmission
from sandbox_api.server.services.job_transitions import SETTLED, JobTransitions, TransitionObserver
from sandbox_api.server.services.job_views import JobView, ResultView, for_reader, job_view

__all__ = [
    "RETRY_AFTER_S",
    "SETTLED",
    "WAIT_RECHECK_MAX_S",
    "WAIT_RECHECK_S",
    "DisabledOwnerJobs",
    "JobService",
    "JobTransitions",
    "JobView",
    "ResultView",
    "TransitionObserver",
    "for_reader",
    "job_view",
]


@dataclass(frozen=True)
class JobService(JobSubmission, JobQueries, JobCancellation):
    """Every job operation over one set of dependencies (the fields are ``JobTransitions``'s)."""
