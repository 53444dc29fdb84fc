"""In-process wake-ups for clients waiting on a job (``GET /v1/jobs/{id}?wait=``).

A job changes state in the runner's worker threads and in request handlers, always inside a database
transaction (``JobService.advance``). Waiters must be told only once that transaction has committed:
told earlier, they would answer with a state that may still roll back. So a transition only marks its
job on the session (``notify_after_commit``), and a SQLAlchemy ``after_commit`` hook on that session
wakes the job's waiters with the job as committed. A rolled-back transition wakes nobody.

The signal is an optimisation, not the source of truth: a waiter also re-reads the database every few
hundred milliseconds, so a change committed by another process is seen too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)

V = TypeVar("V")


class JobSignals(Generic[V]):
    """Who waits on which job; thread-safe. One instance per ``JobService``.

    A waiter is handed the job as committed (``V``, built by the transition's ``snapshot``), so it
    need not read it again; ``None`` when the snapshot could not be taken (then it re-reads).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, list[Callable[[V | None], None]]] = {}

    @contextmanager
    def subscribe(self, job_id: str, wake: Callable[[V | None], None]) -> Iterator[None]:
        """Call ``wake`` (from the committing thread) after every signalled commit of ``job_id``.

        ``wake`` must be quick and must not block: it runs in whichever thread committed.
        """
        with self._lock:
            self._waiters.setdefault(job_id, []).append(wake)
        try:
            yield
        finally:
            with self._lock:
                # By identity: two waiters may hold equal callables.
                left = [w for w in self._waiters.get(job_id, []) if w is not wake]
                if left:
                    self._waiters[job_id] = left
                else:
                    self._waiters.pop(job_id, None)

    def notify(self, job_id: str, snapshot: V | None) -> None:
        """Wake every waiter of ``job_id`` now; never raises (the caller has already committed)."""
        with self._lock:
            wakes = list(self._waiters.get(job_id, ()))
        for wake in wakes:
            try:
                wake(snapshot)
            except Exception as exc:  # a waiter that went away must not fail the committing thread
                log.warning("waking a job waiter failed: %s", type(exc).__name__)

    def notify_after_commit(self, session: Session, job_id: str, snapshot: Callable[[], V]) -> None:
        """Wake ``job_id``'s waiters with ``snapshot()`` once ``session``'s transaction commits.

        Nothing happens on rollback. ``snapshot`` runs after the commit, so it sees every change the
        transaction made after this call too.
        """
        pending: dict[str, Callable[[], V]] | None = session.info.get(self)
        if pending is None:
            pending = {}
            session.info[self] = pending
            # Registered once per session, on the session alone: other sessions pay nothing.
            event.listen(session, "after_commit", self._committed)
            event.listen(session, "after_soft_rollback", self._rolled_back)
        pending[job_id] = snapshot

    def _committed(self, session: Session) -> None:
        pending: dict[str, Callable[[], V]] = session.info.get(self, {})
        signalled = list(pending.items())
        pending.clear()
        for job_id, snapshot in signalled:
            with self._lock:
                if job_id not in self._waiters:
                    continue  # nobody waits: build nothing
            try:
                taken: V | None = snapshot()
            except Exception as exc:  # e.g. an expired attribute: no SQL after a commit; waiters re-read
                log.warning("snapshot of job %s after commit failed: %s", job_id, type(exc).__name__)
                taken = None
            self.notify(job_id, taken)

    def _rolled_back(self, session: Session, previous: SessionTransaction) -> None:
        if not previous.nested:
            session.info.get(self, {}).clear()
