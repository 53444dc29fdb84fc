"""The audit page's chain status in time that does not grow with the chain.

Verifying the whole chain on every load costs about a third of a millisecond an event: a year's log
would make the auditor's page take minutes. This gateway process remembers how far it has verified
instead, and on each load:

* verifies the events added since (each one's hash re-computed, its link to the one before it, its seq
  the next one), starting from the last hash it verified itself, not from anything in the database:
  a chain rewritten behind its back, hashes recomputed, no longer links to what it remembers;
* checks that the stored head is the last event it verified;
* re-verifies the next ``WINDOW`` events of the older part, cycling from genesis, so an event edited
  after it was verified is found within ``count / WINDOW`` loads (at once on a chain under ``WINDOW``
  events). The page says when the last whole pass ended;
* verifies each signed checkpoint's signature once (kept by its exact bytes), and that the event at its
  seq has its head hash.

Any failure is reported and forgets everything remembered: the next load starts again from genesis.
The same checks as ``crypto.audit.verify_chain`` (which ``sandbox audit verify`` runs over an export, from
genesis, against a head kept elsewhere), made one event at a time with ``AuditEntry.digest``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crypto.audit import GENESIS, AuditEntry, Checkpoint, verify_checkpoint
from crypto.errors import CryptoError, IntegrityError
from sandbox_api.server.deps import Services

WINDOW = 100  # older events re-hashed per load: about 0.13 ms each with their reading
BATCH = 1000
MAX_CHECKPOINTS = 100_000


@dataclass
class _Verified:
    seq: int = -1  # the last event verified from genesis
    hash: str = GENESIS
    count: int = 0
    cursor: int = 0  # where the next window of re-verification starts
    cursor_hash: str = GENESIS  # the hash of the event before ``cursor``
    full_pass_at: str | None = None  # when the last pass over the whole chain ended (ISO 8601, UTC)
    checkpoints: set[tuple[int, str, str, bytes]] = field(default_factory=set)


class ChainWatch:
    """One per gateway process (kept on the console's state); thread-safe."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._done = _Verified()

    def status(self, services: Services) -> dict[str, Any]:
        with self._lock:
            try:
                return self._check(services)
            except CryptoError as exc:
                self._done = _Verified()
                return {"ok": False, "problem": str(exc)}

    def _check(self, services: Services) -> dict[str, Any]:
        done = self._done
        audit = services.audit
        # 1. Events added since the last load, linked to the hash remembered here; the stored head
        # (read first: events may be appended meanwhile) must be one of them.
        head = audit.head()
        done.seq, done.hash = _verify_run(audit, after=done.seq, prev_hash=done.hash, limit=None)
        done.count = done.seq + 1
        last = head.last_seq if head.last_seq is not None else -1
        at_head = done.hash if last == done.seq else _hash_at(audit, last)
        # The last event verified must still be there, unchanged: a chain never shrinks.
        if last > done.seq or at_head != head.hash or _hash_at(audit, done.seq) != done.hash:
            raise IntegrityError(
                f"chain truncated or rewritten: the stored head (seq {last}) is not in the verified chain"
            )
        # 2. The next window of the older part, re-hashed.
        end, end_hash = _verify_run(
            audit, after=done.cursor - 1, prev_hash=done.cursor_hash, limit=self.window
        )
        if end >= done.seq:
            if end_hash != done.hash:
                raise IntegrityError(f"seq {end}: re-verified chain does not end at the verified head")
            done.cursor, done.cursor_hash = 0, GENESIS
            done.full_pass_at = datetime.now(UTC).isoformat()
        else:
            done.cursor, done.cursor_hash = end + 1, end_hash
        # 3. Signed checkpoints: each signature once; each must match the chain at its seq.
        keys = {record.kid: record.public for record in services.keys.signing_keys()}
        checkpoints = audit.checkpoints(limit=MAX_CHECKPOINTS)
        for checkpoint in checkpoints:
            known = (checkpoint.seq, checkpoint.head_hash, checkpoint.kid, checkpoint.signature)
            if known in done.checkpoints:
                continue
            verify_checkpoint(checkpoint, keys)
            _match(audit, checkpoint)
            done.checkpoints.add(known)
        return {
            "ok": True,
            "count": done.count,
            "head": done.hash,
            "checkpoints": len(checkpoints),
            "full_pass_at": done.full_pass_at,
        }


def _verify_run(audit: Any, *, after: int, prev_hash: str, limit: int | None) -> tuple[int, str]:
    """Verify events after seq ``after`` (the one at ``after`` hashed to ``prev_hash``), at most ``limit``
    of them; the last seq verified and its hash."""
    seq, last = after, prev_hash
    left = limit
    while left is None or left > 0:
        size = BATCH if left is None else min(BATCH, left)
        page: list[AuditEntry] = audit.events(since_seq=None if seq < 0 else seq, limit=size)
        for entry in page:
            _link(entry, seq + 1, last)
            seq, last = entry.seq, entry.hash
        if left is not None:
            left -= len(page)
        if len(page) < size:
            break
    return seq, last


def _link(entry: AuditEntry, expected_seq: int, prev_hash: str) -> None:
    if entry.hash != entry.digest():
        raise IntegrityError(f"seq {entry.seq}: event edited (its content does not match its hash)")
    if entry.seq != expected_seq:
        raise IntegrityError(f"seq {expected_seq}: missing (the next event is seq {entry.seq})")
    if entry.prev_hash != prev_hash:
        raise IntegrityError(
            f"seq {entry.seq}: link broken (prev_hash does not match the hash of seq {expected_seq - 1}); "
            "an event was edited and re-hashed, inserted or replaced"
        )


def _hash_at(audit: Any, seq: int) -> str | None:
    if seq < 0:
        return GENESIS
    found: list[AuditEntry] = audit.events(since_seq=None if seq == 0 else seq - 1, limit=1)
    return found[0].hash if found and found[0].seq == seq else None


def _match(audit: Any, checkpoint: Checkpoint) -> None:
    if _hash_at(audit, checkpoint.seq) != checkpoint.head_hash:
        raise IntegrityError(
            f"checkpoint at seq {checkpoint.seq} does not match the chain: its tail was rewritten"
        )
