"""Which gateway runs a job, so that a gateway starting beside a live one never takes its jobs.

Several gateways may share one PostgreSQL database. A job that is ``running`` or ``checking`` when a
gateway starts is either orphaned (its gateway died: re-queue or fail it) or alive on another gateway
(leave it alone). The runner that claims a job takes a PostgreSQL session advisory lock keyed by the job
on a connection it keeps until the job is settled; PostgreSQL drops the lock by itself when that
connection or its process dies. Recovery asks for the same lock inside its own transaction and treats
the job as orphaned only when it gets it. No heartbeat to tune, no clock to trust.

SQLite serves one gateway (a second one on the same file is not supported), so every active job a
starting gateway finds is orphaned and the lease is a no-op.
"""

from __future__ import annotations

import threading
from types import TracebackType

from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from sandbox_api.server.store.db import Database

# Advisory locks share one key space per database: the high bits name this use (an arbitrary constant).
_NAMESPACE = 0x5BC0_0000_0000_0000
_KEY_BITS = 58


def lease_key(job_id: str) -> int:
    """The advisory-lock key of a job: a signed 64-bit integer, as PostgreSQL takes it.

    >>> lease_key("0" * 32) == lease_key("0" * 32) != lease_key("f" * 32)
    True
    >>> -(2**63) <= lease_key("f" * 32) < 2**63
    True
    """
    low = int(job_id[:16], 16) & ((1 << _KEY_BITS) - 1)
    key = _NAMESPACE | low
    return key - (1 << 64) if key >= 1 << 63 else key


class LeasesClosed(RuntimeError):
    """A lease asked for after the gateway's shutdown dropped them all: the claim rolls back."""


class Lease:
    """A held job lease; released when the job is settled (``with lease:``) or its claim rolled back."""

    def __init__(self, connection: Connection | None, *, held: set[Lease] | None = None) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._held = held  # the gateway's leases still held (JobLeases.abandon_all)
        if held is not None:
            held.add(self)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()

    def release(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
            if self._held is not None:
                self._held.discard(self)
        if connection is None:
            return
        try:
            # Closing returns the connection to the pool; the lock must go first, or the pool keeps it.
            connection.execute(select(func.pg_advisory_unlock_all()))
        except DBAPIError:
            # Its server went away (a failover): the lock went with the session. Drop the connection,
            # and keep the job's thread alive for the next job.
            connection.invalidate()
        finally:
            connection.close()

    def abandon(self) -> None:
        """Drop the lease's connection outright (the gateway is stopping and the job's thread did not
        settle it in time): PostgreSQL ends the session and its lock with it, and nothing is left open
        for the pool's disposal to miss."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.invalidate()
            connection.close()


class JobLeases:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._held: set[Lease] = set()
        self._closing = threading.Lock()  # a lease registers, or abandon_all closes: never both at once
        self._closed = False

    def take(self, job_id: str) -> Lease:
        """Hold ``job_id``'s lease on a connection of its own (PostgreSQL); call before the claim commits,
        so that no other gateway ever sees the job running without its lease held."""
        if self._db.is_sqlite:
            return Lease(None)
        # Autocommit: a session-level advisory lock needs no transaction, and this saves the BEGIN and
        # COMMIT round trips around taking and around releasing it.
        if self._closed:
            raise LeasesClosed("the gateway is stopping: no new job lease")
        connection = self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            connection.execute(select(func.pg_advisory_lock(lease_key(job_id))))
        except BaseException:
            connection.close()
            raise
        with self._closing:
            if not self._closed:
                return Lease(connection, held=self._held)
        # ``abandon_all`` ran while this thread took the lock (a thread past its join at shutdown):
        # it could not see this connection, so drop it here, or it would outlive the pool's disposal.
        connection.invalidate()
        connection.close()
        raise LeasesClosed("the gateway is stopping: no new job lease")

    def abandon_all(self) -> None:
        """At shutdown, after the runner's threads were given their time: drop every lease still held,
        and refuse new ones (a thread still claiming must not take one that nothing would close)."""
        with self._closing:
            self._closed = True
            held = list(self._held)
            self._held.clear()
        for lease in held:
            lease.abandon()

    def orphaned(self, session: Session, job_id: str) -> bool:
        """True when no live gateway holds ``job_id``'s lease (always on SQLite). The probe's lock lasts
        only until ``session``'s transaction ends."""
        if self._db.is_sqlite:
            return True
        return bool(session.execute(select(func.pg_try_advisory_xact_lock(lease_key(job_id)))).scalar_one())
