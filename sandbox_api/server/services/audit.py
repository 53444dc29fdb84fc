"""The hash-chained audit log in the metadata database.

Every append happens inside the caller's write transaction, so a state change and its event commit or
roll back together. Appends serialize on the audit head row: SQLite's ``BEGIN IMMEDIATE`` (store/db.py)
already holds the write lock; on PostgreSQL ``FOR UPDATE`` locks the head row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session, SessionTransaction

from crypto.audit import (
    CHECKPOINT_TYPE_BY_PROFILE,
    EVENT_FORMAT_BY_PROFILE,
    GENESIS,
    AuditEntry,
    Checkpoint,
    chain,
    sign_checkpoint,
)
from crypto.profile import INTERNATIONAL, PROFILES, CryptoProfile
from crypto.signing import Signer
from sandbox_api.clock import Clock, iso
from sandbox_api.server.services.read_buffer import PendingRead, ReadBuffer, safe_details, safe_text
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import AuditCheckpointRow, AuditEventRow, AuditHeadRow

SYSTEM_ACTOR = "system"

log = logging.getLogger(__name__)

#: Told of one committed audit event (``AuditLog.watch``).
Watcher = Callable[[AuditEntry], None]


@dataclass(frozen=True)
class AuditHead:
    count: int
    last_seq: int | None
    hash: str
    at: str | None


@dataclass(frozen=True)
class _Link:
    """The last chained event as the next one needs it (``crypto.audit.chain`` reads seq and hash)."""

    seq: int
    hash: str


@dataclass
class _Tip:
    """The audit head within one write transaction: its locked row (None before the first event ever)
    and the last event chained, in the database or still waiting for the transaction's flush."""

    row: AuditHeadRow | None
    last: _Link | AuditEntry | None

    def advance(self, session: Session, entry: AuditEntry) -> None:
        self.last = entry
        if self.row is None:
            self.row = AuditHeadRow(id=1, seq=entry.seq, hash=entry.hash)
            session.add(self.row)
        else:
            self.row.seq, self.row.hash = entry.seq, entry.hash


_TIP_KEY = "audit-tip"


def to_entry(row: AuditEventRow) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        event=row.event,
        actor=row.actor,
        details=dict(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
        format=row.format,
    )


def _event_row(entry: AuditEntry) -> AuditEventRow:
    return AuditEventRow(
        seq=entry.seq,
        at=entry.at,
        event=entry.event,
        actor=entry.actor,
        details=dict(entry.details),
        prev_hash=entry.prev_hash,
        hash=entry.hash,
        format=entry.format,
    )


@dataclass(frozen=True)
class AuditLog:
    db: Database
    clock: Clock
    checkpoint_every: int
    signing_key: Callable[[], Signer]
    # The deployment's algorithms (chosen at ``sandbox init``): which event format and checkpoint type
    # new entries are written in, so which hash chains them and which signature signs the checkpoints.
    profile: CryptoProfile = PROFILES[INTERNATIONAL]
    # Also checkpoint the first event appended this many minutes after the last checkpoint (None: off).
    checkpoint_minutes: int | None = None
    # When the last checkpoint (or the first event) was, as this process last read or wrote it. Only
    # ever older than the truth (checkpoints only get newer), so "not overdue yet" is safe to answer
    # from it; "overdue" is confirmed from the database. Saves a query on almost every append.
    _since: dict[str, datetime] = field(default_factory=dict, compare=False, repr=False)
    # The access trace (``trace``): read events wait at most this long, or until this many wait,
    # before one transaction chains them (services/read_buffer.py).
    read_flush_ms: int = 200
    read_flush_events: int = 256
    _reads: ReadBuffer = field(init=False, compare=False, repr=False)
    # Told of each appended event once its transaction commits (alerts on unusual use: services/
    # alerts.py). A watcher runs in the committing thread, so it must only take note and return.
    _watchers: list[Watcher] = field(default_factory=list, compare=False, repr=False)

    def watch(self, watcher: Watcher) -> None:
        """Tell ``watcher`` of every event appended from now on, after its transaction commits."""
        self._watchers.append(watcher)

    def __post_init__(self) -> None:
        reads = ReadBuffer(
            flush=self.flush_reads, window_s=self.read_flush_ms / 1000, max_events=self.read_flush_events
        )
        object.__setattr__(self, "_reads", reads)

    def append(
        self, session: Session, *, event: str, actor: str, details: Mapping[str, object]
    ) -> AuditEntry:
        """Chain one event after the current head, in the caller's transaction.

        The head row is locked and read once per transaction (``_tip``); later appends in the same
        transaction chain in process from the entry before. Nothing is flushed here: the events of a
        transaction reach the database in one batch at its next flush (the commit, or any query in
        between, which autoflush precedes), with the head row updated once. That is the same chain as
        one locked read per append, at a round trip per transaction instead of three per event.
        """
        tip = self._tip(session)
        entry = chain(
            tip.last,
            at=iso(self.clock.now()),
            event=event,
            actor=actor,
            details=dict(details),
            format=EVENT_FORMAT_BY_PROFILE[self.profile.name],
        )
        rows: list[AuditEventRow | AuditCheckpointRow] = [_event_row(entry)]
        tip.advance(session, entry)
        if self._watchers:
            self._tell_after_commit(session, entry)
        if (entry.seq + 1) % self.checkpoint_every == 0 or self._checkpoint_overdue(session, entry):
            # Periodic signed checkpoints: truncation of the chain is only detectable against a head
            # kept elsewhere, and a signed one cannot be forged by whoever can write the database.
            checkpoint = self.sign_head(seq=entry.seq, head_hash=entry.hash)
            rows.append(AuditCheckpointRow(seq=entry.seq, line=checkpoint.to_json()))
        session.add_all(rows)
        return entry

    def _tip(self, session: Session) -> _Tip:
        """The head as this transaction knows it: locked and read on the first append (``FOR UPDATE`` on
        PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already holds the write lock), then kept in process.

        Keyed by the session's root transaction: after a commit or a rollback the next append reads
        (and locks) the head again, so a rolled-back append never leaves a chain link behind.
        """
        transaction = session.get_transaction()
        known: tuple[SessionTransaction | None, _Tip] | None = session.info.get(_TIP_KEY)
        if known is not None and known[0] is transaction:
            return known[1]
        # Without autoflush: the head row is all this reads, and what the caller has pending (a new
        # job row and its first transition) then reaches the database in one flush, as its final state.
        with session.no_autoflush:
            row = session.execute(
                select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()
            ).scalar_one_or_none()
        tip = _Tip(row=row, last=None if row is None else _Link(seq=row.seq, hash=row.hash))
        session.info[_TIP_KEY] = (session.get_transaction(), tip)
        if not sa_event.contains(session, "after_soft_rollback", _forget_tip):
            sa_event.listen(session, "after_soft_rollback", _forget_tip)
        return tip

    def _tell_after_commit(self, session: Session, entry: AuditEntry) -> None:
        pending: list[AuditEntry] | None = session.info.get(self._watchers_key)
        if pending is None:
            pending = []
            session.info[self._watchers_key] = pending
            # Registered once per session, on that session alone; a rollback tells nobody.
            sa_event.listen(session, "after_commit", self._committed)
            sa_event.listen(session, "after_soft_rollback", self._forget)
        pending.append(entry)

    @property
    def _watchers_key(self) -> str:
        return f"audit-watchers-{id(self)}"

    def _committed(self, session: Session) -> None:
        entries: list[AuditEntry] = session.info.pop(self._watchers_key, [])
        for entry in entries:
            for watcher in self._watchers:
                try:
                    watcher(entry)
                except Exception as exc:  # a watcher must never fail the committing thread
                    log.warning("audit watcher failed on %s: %s", entry.event, type(exc).__name__)

    def _forget(self, session: Session, previous: SessionTransaction) -> None:
        if not previous.nested:
            session.info.pop(self._watchers_key, None)

    def _checkpoint_overdue(self, session: Session, entry: AuditEntry) -> bool:
        """Whether ``checkpoint_minutes`` have passed since the last checkpoint (or the first event)."""
        if self.checkpoint_minutes is None:
            return False
        period = timedelta(minutes=self.checkpoint_minutes)
        at = datetime.fromisoformat(entry.at)
        known = self._since.get("at")
        if known is not None and at - known < period:
            return False
        # Columns, not rows: loading ORM objects doubled the cost of this read.
        last = session.execute(
            select(AuditCheckpointRow.line).order_by(AuditCheckpointRow.seq.desc()).limit(1)
        ).scalar_one_or_none()
        if last is not None:
            since = Checkpoint.from_json(last).at
        else:
            first = session.execute(
                select(AuditEventRow.at).where(AuditEventRow.seq == 0)
            ).scalar_one_or_none()
            since = entry.at if first is None else first
        mark = datetime.fromisoformat(since)
        # Only what the database says: a checkpoint signed below may still roll back with its
        # transaction, and the next append then reads again and finds out.
        self._since["at"] = mark
        return at - mark >= period

    def sign_head(self, *, seq: int, head_hash: str) -> Checkpoint:
        return sign_checkpoint(
            self.profile.require_signer(self.signing_key()),
            seq=seq,
            head_hash=head_hash,
            at=iso(self.clock.now()),
            type=CHECKPOINT_TYPE_BY_PROFILE[self.profile.name],
        )

    def checkpoints(self, *, since_seq: int | None = None, limit: int = 100) -> list[Checkpoint]:
        with self.db.read() as session:
            query = select(AuditCheckpointRow).order_by(AuditCheckpointRow.seq).limit(limit)
            if since_seq is not None:
                query = query.where(AuditCheckpointRow.seq > since_seq)
            return [Checkpoint.from_json(row.line) for row in session.execute(query).scalars()]

    def record(self, *, event: str, actor: str, details: Mapping[str, object]) -> AuditEntry:
        """Append one event in its own transaction (for reads and refusals, which change nothing else).

        Read events still waiting in the trace are chained first, in the same transaction: whatever an
        auditor reads after this (the audit routes record before they read) includes every earlier read.
        """
        with self._reads.taking() as waiting, self.db.write() as session:
            self._chain_reads(session, waiting)
            return self.append(session, event=event, actor=actor, details=details)

    def trace(self, *, event: str, actor: str, details: Mapping[str, object]) -> None:
        """Queue a read event: chained within ``read_flush_ms`` (or sooner), never in the caller's time."""
        # Made encodable here, so that no request can put a batch in the queue that fails to chain.
        read = PendingRead(event=event, actor=safe_text(actor), details=safe_details(details))
        self._reads.add(read)

    def flush_reads(self) -> int:
        """Chain every waiting read event now (the background thread, shutdown); how many."""
        with self._reads.taking() as waiting:
            if waiting:
                with self.db.write() as session:
                    self._chain_reads(session, waiting)
            return len(waiting)

    def _chain_reads(self, session: Session, waiting: list[PendingRead]) -> None:
        """``append`` for a batch of read events, all stamped with one time (the chain is the same as
        one append each; measured in benchmarks/bench_access_trace.py)."""
        if not waiting:
            return
        tip = self._tip(session)
        at = iso(self.clock.now())
        rows: list[AuditEventRow | AuditCheckpointRow] = []
        entry: AuditEntry | None = None
        for read in waiting:
            entry = chain(
                tip.last,
                at=at,
                event=read.event,
                actor=read.actor,
                details=dict(read.details),
                format=EVENT_FORMAT_BY_PROFILE[self.profile.name],
            )
            tip.advance(session, entry)
            rows.append(_event_row(entry))
            if (entry.seq + 1) % self.checkpoint_every == 0:
                checkpoint = self.sign_head(seq=entry.seq, head_hash=entry.hash)
                rows.append(AuditCheckpointRow(seq=entry.seq, line=checkpoint.to_json()))
        session.add_all(rows)
        assert entry is not None  # at least one event was chained above
        if (entry.seq + 1) % self.checkpoint_every != 0 and self._checkpoint_overdue(session, entry):
            checkpoint = self.sign_head(seq=entry.seq, head_hash=entry.hash)
            session.add(AuditCheckpointRow(seq=entry.seq, line=checkpoint.to_json()))

    def head(self) -> AuditHead:
        with self.db.read() as session:
            head = session.get(AuditHeadRow, 1)
            if head is None:
                return AuditHead(count=0, last_seq=None, hash=GENESIS, at=None)
            row = session.get(AuditEventRow, head.seq)
            return AuditHead(
                count=head.seq + 1, last_seq=head.seq, hash=head.hash, at=None if row is None else row.at
            )

    def events(
        self,
        *,
        event: str | None = None,
        actor: str | None = None,
        since_seq: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[AuditEntry]:
        """Events after ``since_seq`` (exclusive), oldest first (``newest_first``: the newest ``limit``
        of them, newest first, as the console's timeline shows them).

        ``event`` matches a name exactly, or every name under a prefix that ends in '.' (``job.``).
        """
        with self.db.read() as session:
            order = AuditEventRow.seq.desc() if newest_first else AuditEventRow.seq
            query = select(AuditEventRow).order_by(order).limit(limit)
            if since_seq is not None:
                query = query.where(AuditEventRow.seq > since_seq)
            if event is not None:
                query = query.where(
                    AuditEventRow.event.startswith(event, autoescape=True)
                    if event.endswith(".")
                    else AuditEventRow.event == event
                )
            if actor is not None:
                query = query.where(AuditEventRow.actor == actor)
            return [to_entry(row) for row in session.execute(query).scalars()]

    def iter_all(self, *, batch: int = 1000) -> Iterator[AuditEntry]:
        """Every event in order, fetched in batches so an export never holds the whole log."""
        last: int | None = None
        while True:
            page = self.events(since_seq=last, limit=batch)
            yield from page
            if len(page) < batch:
                return
            last = page[-1].seq


def _forget_tip(session: Session, previous: SessionTransaction) -> None:
    """A savepoint rolled back may have taken appends with it: the next append reads the head again
    (a root transaction's rollback already starts a new key)."""
    if previous.nested:
        session.info.pop(_TIP_KEY, None)
