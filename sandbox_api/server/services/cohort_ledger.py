"""The released-cohort ledger (docs/design.md §5): remembers, sealed, the unit sets behind released cells.

Per scope lineage (``policies.cohorts.lineage``: the scope's name and the datasets it names, so a new
version or a revocation does not reset it, and all grantees share it), the ledger holds a power-sum
sketch of every cohort released so far (``policies.cohorts.sketch``: 4 * (k + 2) bytes each). Before a
job's rows are released, :meth:`CohortLedger.check_and_record` decides each row against everything
released before in the lineage and against the job's earlier rows, and records the cohorts of the
rows it releases, in the caller's transaction.

Where it lives and why it never leaves the domain: the sketches are computed inside the job's sandbox
from the unit lists, under an element secret derived for the lineage, and come to the gateway only as
sketches; here they are sealed with AES-256-GCM under a key derived from the ledger's master secret,
bound to lineage and sequence number, and stored in the metadata database. No route reads them; only
this service unseals them, to decide. A decoded small difference would be keyed field elements, not
identifiers.

Concurrency: the lineage's head row is locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
write transactions are serial already), so two jobs of one lineage are checked one after the other.
The decoded sketches are kept in memory per lineage and topped up from the database by sequence
number, so a check reads only the batches added since the last one (a restart, or another gateway on
the same database, costs one full read).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.envelope import seal, unseal
from crypto.pseudonym import derive_key
from policies import Scope
from policies.cohorts import (
    DEFAULT_TRIPLE_BUDGET,
    Cell,
    CohortIndex,
    CohortSketch,
    Decision,
    Lineage,
    SketchRequest,
    cells_of,
    decide,
    least_for,
    lineage_of,
    releasable_positions,
    sketch_columns,
    sums_for,
)
from policies.errors import OutputInvalid
from sandbox_api.clock import Clock
from sandbox_api.errors import NotFound
from sandbox_api.server.store.models import CohortLedgerBatchRow, CohortLedgerHeadRow

_FORMAT_1 = 1  # the first layout: one sketch layout per batch, fixed size per sketch
_FORMAT = 2  # first byte of a sealed batch: the layout below
_HEADER_1 = struct.Struct(">BHBI")  # format, power sums and buckets per sketch, sketches in the batch
_HEADER = struct.Struct(">BI")  # format, sketches in the batch; then each as a 2-byte length and its bytes
_LENGTH = struct.Struct(">H")


def pack(cohorts: Sequence[CohortSketch]) -> bytes:
    """A batch's plaintext: format, count, then each sketch (``CohortSketch.to_bytes``) after its length
    (sketches of one job differ in length: a small cohort has fewer least elements).

    >>> unpack(pack([CohortSketch(12, (1, 2)), CohortSketch(40, (3, 4), (1,), (5, 9))]))
    ... # doctest: +NORMALIZE_WHITESPACE
    [CohortSketch(units=12, sums=(1, 2), buckets=(), least=()),
     CohortSketch(units=40, sums=(3, 4), buckets=(1,), least=(5, 9))]
    """
    blobs = [c.to_bytes() for c in cohorts]
    return _HEADER.pack(_FORMAT, len(blobs)) + b"".join(_LENGTH.pack(len(b)) + b for b in blobs)


def unpack(blob: bytes) -> list[CohortSketch]:
    """The sketches of a batch, of either format (batches written before format 2 stay readable).

    >>> old = _HEADER_1.pack(1, 2, 0, 1) + CohortSketch(12, (1, 2)).to_bytes()
    >>> unpack(old)
    [CohortSketch(units=12, sums=(1, 2), buckets=(), least=())]
    """
    if blob[:1] == bytes([_FORMAT_1]):
        return _unpack_1(blob)
    fmt, count = _HEADER.unpack_from(blob)
    if fmt != _FORMAT:
        raise OutputInvalid(f"unknown cohort batch layout (format {fmt})")
    out: list[CohortSketch] = []
    at = _HEADER.size
    for _ in range(count):
        (size,) = _LENGTH.unpack_from(blob, at)
        out.append(CohortSketch.from_bytes(blob[at + _LENGTH.size : at + _LENGTH.size + size]))
        at += _LENGTH.size + size
    if at != len(blob):
        raise OutputInvalid(f"a cohort batch of {len(blob)} bytes does not hold {count} sketches")
    return out


def _unpack_1(blob: bytes) -> list[CohortSketch]:
    fmt, width, nbuckets, count = _HEADER_1.unpack_from(blob)
    size = 5 + 4 * width + 2 * nbuckets
    body = blob[_HEADER_1.size :]
    if fmt != _FORMAT_1 or len(body) != size * count:
        raise OutputInvalid(f"unknown cohort batch layout (format {fmt}, {len(body)} bytes)")
    return [CohortSketch.from_bytes(body[i * size : (i + 1) * size]) for i in range(count)]


@dataclass
class _Loaded:
    seq: int
    index: CohortIndex


@dataclass
class CohortLedger:
    """One per gateway; ``master`` is the domain keyring's ``cohort-ledger`` secret."""

    master: bytes = field(repr=False)
    clock: Clock
    triple_budget: int = DEFAULT_TRIPLE_BUDGET
    _loaded: dict[str, _Loaded] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def request(self, lineage: Lineage, *, min_units: int) -> SketchRequest:
        """What a job's sandbox needs to sketch its cohorts (put it in ``JobSpec.cohorts``)."""
        return SketchRequest(
            secret=self._element_secret(lineage),
            power_sums=sums_for(min_units),
            least=least_for(min_units),
        )

    def check_and_record(
        self, session: Session, lineage: Lineage, cells: Sequence[Cell], *, min_units: int, job_id: str
    ) -> list[Decision]:
        """Decide each cell (a row about to be released) in order; record the released ones' cohorts.

        In the caller's transaction: if it rolls back, nothing is recorded (and the next check reads the
        database again). Withheld cells carry a reason a person can act on, never how many units
        differed.
        """
        with self._lock:
            if any(isinstance(o, CohortLedgerBatchRow) and o.lineage == lineage.id for o in session.new):
                session.flush()  # an earlier check of this transaction: the reads below must see it
            # Nothing else pending is flushed by these reads (the job's transition, its audit events):
            # the release writes everything in one flush when it commits, a round trip per statement
            # fewer on a networked store. Nothing read here depends on those writes.
            with session.no_autoflush:
                head = self._head(session, lineage)
                index = self._index(session, lineage, upto=head.seq)
            # The in-memory index must only ever hold what is committed: what this check records is
            # not added to it here (``record=False``) but comes back from the database with the next
            # check, by sequence number.
            outcome = decide(
                index, cells, min_units=min_units, triple_budget=self.triple_budget, record=False
            )
            head.seq += 1
            session.add(
                CohortLedgerBatchRow(
                    lineage=lineage.id,
                    seq=head.seq,
                    job_id=job_id,
                    cohorts=len(outcome.recorded),
                    unchecked=outcome.unchecked,
                    sealed=seal(self._seal_key(), pack(outcome.recorded), aad=_aad(lineage, head.seq)),
                    created_at=self.clock.now(),
                )
            )
            # Not flushed here: the batch and the head's new sequence reach the database with the rest
            # of the release at its commit (the head row stays locked until then).
            return list(outcome.decisions)

    def replay(
        self, session: Session, lineage: Lineage, cells: Sequence[Cell], *, min_units: int, job_id: str
    ) -> list[Decision]:
        """The decisions :meth:`check_and_record` made for ``job_id``, made again against the ledger as
        it stood before that job (nothing is recorded). NotFound for a job never checked."""
        seq = session.execute(
            select(CohortLedgerBatchRow.seq).where(
                CohortLedgerBatchRow.lineage == lineage.id, CohortLedgerBatchRow.job_id == job_id
            )
        ).scalar_one_or_none()
        if seq is None:
            raise NotFound(f"job {job_id} was never checked against the ledger of scope {lineage.scope!r}")
        index = CohortIndex(self._read(session, lineage, after=0, upto=seq - 1))
        outcome = decide(index, cells, min_units=min_units, triple_budget=self.triple_budget)
        return list(outcome.decisions)

    # --- helpers -----------------------------------------------------------------------------
    def _head(self, session: Session, lineage: Lineage) -> CohortLedgerHeadRow:
        head = session.execute(
            select(CohortLedgerHeadRow).where(CohortLedgerHeadRow.lineage == lineage.id).with_for_update()
        ).scalar_one_or_none()
        if head is None:
            head = CohortLedgerHeadRow(
                lineage=lineage.id,
                scope=lineage.scope,
                datasets=list(lineage.datasets),
                seq=0,
                created_at=self.clock.now(),
            )
            session.add(head)
            session.flush()
        return head

    def _index(self, session: Session, lineage: Lineage, *, upto: int) -> CohortIndex:
        loaded = self._loaded.get(lineage.id)
        if loaded is None or loaded.seq > upto:
            loaded = _Loaded(seq=0, index=CohortIndex())
        if loaded.seq < upto:
            loaded.index.add(self._read(session, lineage, after=loaded.seq, upto=upto))
            loaded.seq = upto
        self._loaded[lineage.id] = loaded
        return loaded.index

    def _read(self, session: Session, lineage: Lineage, *, after: int, upto: int) -> list[CohortSketch]:
        rows = session.execute(
            select(CohortLedgerBatchRow.seq, CohortLedgerBatchRow.sealed)
            .where(
                CohortLedgerBatchRow.lineage == lineage.id,
                CohortLedgerBatchRow.seq > after,
                CohortLedgerBatchRow.seq <= upto,
            )
            .order_by(CohortLedgerBatchRow.seq)
        ).all()
        key = self._seal_key()
        out: list[CohortSketch] = []
        for seq, sealed in rows:
            out.extend(unpack(unseal(key, sealed, aad=_aad(lineage, seq))))
        return out

    def _seal_key(self) -> bytes:
        return derive_key(self.master, "cohort-ledger/seal")

    def _element_secret(self, lineage: Lineage) -> bytes:
        # Per lineage: the same unit gets unrelated elements in two lineages.
        return derive_key(self.master, f"cohort-ledger/elements/{lineage.id}")


def _aad(lineage: Lineage, seq: int) -> bytes:
    return f"cohort-ledger/{lineage.id}/{seq}".encode()


#: How the ledger decides a job's cells: ``CohortLedger.check_and_record`` at release, ``.replay`` at replay.
Decide = Callable[[Lineage, Sequence[Cell], int], list[Decision]]


def ledger_withheld(table: pd.DataFrame, scope: Scope, decide: Decide) -> dict[int, str]:
    """The rows of a SQL result (positions in ``table``) the ledger withholds, with its reason for each.

    Only the rows the output check would release are decided (every other one never leaves); a scope
    with differential privacy, or a result without cohort sketches, has no ledger.
    """
    if scope.disclosure.dp is not None or not sketch_columns(table.columns):
        return {}
    positions = releasable_positions(table, scope.disclosure)
    decisions = decide(lineage_of(scope), cells_of(table, positions), scope.disclosure.min_units)
    return {p: d.reason for p, d in zip(positions, decisions, strict=True) if not d.released}
