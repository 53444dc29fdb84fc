"""Audit witnesses: their registration and their co-signatures of the gateway's checkpoints.

The gateway only stores and serves co-signatures; it cannot make one (the witness keys never reach it).
Each co-signature is checked on arrival against the witness's registered key and the stored checkpoint,
so what the bundle carries is what the witnesses signed. Every registration and co-signature is an
audit event. The crypto is in ``crypto.witness``; docs/auditing.md, "Witnessed checkpoints".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from crypto.audit import Checkpoint
from crypto.errors import CryptoError
from crypto.signing import ED25519, ED25519_KEY_BYTES, SM2, key_id
from crypto.sm import SM2_PUBLIC_BYTES
from crypto.witness import WitnessSignature, missing_witnesses, verify_witness
from sandbox_api.clock import Clock, iso
from sandbox_api.errors import Conflict, InvalidInput, NotFound
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import (
    AuditCheckpointRow,
    AuditWitnessRow,
    AuditWitnessSignatureRow,
    DomainRow,
)


@dataclass(frozen=True)
class Witness:
    name: str
    domain: str | None
    kid: str
    algorithm: str
    public: bytes
    registered_by: str
    registered_at: str

    def to_dict(self) -> dict[str, object]:
        """The record the bundle and ``sandbox witness`` files carry (public key in hex)."""
        return {
            "name": self.name,
            "domain": self.domain,
            "kid": self.kid,
            "algorithm": self.algorithm,
            "public_key": self.public.hex(),
        }


@dataclass(frozen=True)
class WitnessedCheckpoint:
    checkpoint: Checkpoint
    signatures: list[WitnessSignature]
    missing: list[str]


def _witness(row: AuditWitnessRow) -> Witness:
    return Witness(
        name=row.name,
        domain=row.domain,
        kid=row.kid,
        algorithm=row.algorithm,
        public=bytes.fromhex(row.public),
        registered_by=row.registered_by,
        registered_at=iso(row.registered_at),
    )


def _public_key(text: str) -> tuple[bytes, str]:
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise InvalidInput("public_key must be hex") from exc
    if len(raw) == ED25519_KEY_BYTES:
        return raw, ED25519
    if len(raw) == SM2_PUBLIC_BYTES and raw[0] == 4:
        return raw, SM2
    raise InvalidInput("public_key must be 32 bytes (Ed25519) or 65 bytes from 04 (SM2), in hex")


@dataclass(frozen=True)
class WitnessService:
    db: Database
    audit: AuditLog
    clock: Clock
    required: Sequence[str] = ()

    def register(self, *, actor: str, name: str, domain: str | None, public_key: str) -> Witness:
        public, algorithm = _public_key(public_key)
        with self.db.write() as session:
            if session.get(AuditWitnessRow, name) is not None:
                raise Conflict(f"witness {name} is already registered")
            if domain is not None and session.get(DomainRow, domain) is None:
                raise NotFound(f"domain {domain} does not exist")
            row = AuditWitnessRow(
                name=name,
                domain=domain,
                kid=key_id(public),
                algorithm=algorithm,
                public=public.hex(),
                registered_by=actor,
                registered_at=self.clock.now(),
            )
            session.add(row)
            self.audit.append(
                session,
                event="audit.witness_registered",
                actor=actor,
                details={"witness": name, "domain": domain, "kid": row.kid, "algorithm": algorithm},
            )
            return _witness(row)

    def witnesses(self) -> list[Witness]:
        with self.db.read() as session:
            rows = session.execute(select(AuditWitnessRow).order_by(AuditWitnessRow.name)).scalars()
            return [_witness(r) for r in rows]

    def checkpoints(
        self, *, unwitnessed_by: str | None = None, since_seq: int | None = None, limit: int = 100
    ) -> list[WitnessedCheckpoint]:
        """Stored checkpoints, oldest first, each with its co-signatures and the required witnesses it
        still lacks. ``unwitnessed_by``: only those after the last one that witness co-signed (a witness
        only ever signs forward) and not signed by it."""
        domains = {w.name: w.domain for w in self.witnesses()}
        with self.db.read() as session:
            query = select(AuditCheckpointRow).order_by(AuditCheckpointRow.seq).limit(limit)
            if unwitnessed_by is not None:
                if unwitnessed_by not in domains:
                    raise NotFound(f"witness {unwitnessed_by} is not registered")
                last = session.execute(
                    select(AuditWitnessSignatureRow.seq)
                    .where(AuditWitnessSignatureRow.witness == unwitnessed_by)
                    .order_by(AuditWitnessSignatureRow.seq.desc())
                    .limit(1)
                ).scalar_one_or_none()
                since_seq = max(since_seq if since_seq is not None else -1, last if last is not None else -1)
            if since_seq is not None:
                query = query.where(AuditCheckpointRow.seq > since_seq)
            checkpoints = [Checkpoint.from_json(row.line) for row in session.execute(query).scalars()]
            seqs = [cp.seq for cp in checkpoints]
            signatures: dict[int, list[WitnessSignature]] = {seq: [] for seq in seqs}
            if seqs:
                rows = session.execute(
                    select(AuditWitnessSignatureRow)
                    .where(AuditWitnessSignatureRow.seq.in_(seqs))
                    .order_by(AuditWitnessSignatureRow.seq, AuditWitnessSignatureRow.witness)
                ).scalars()
                for row in rows:
                    signatures[row.seq].append(WitnessSignature.from_json(row.line))
        return [
            WitnessedCheckpoint(
                checkpoint=cp,
                signatures=signatures[cp.seq],
                missing=missing_witnesses(self.required, (s.witness for s in signatures[cp.seq]), domains),
            )
            for cp in checkpoints
        ]

    def cosign(self, *, actor: str, seq: int, signature: WitnessSignature) -> WitnessSignature:
        """Store a witness's co-signature of the checkpoint at ``seq`` once it verifies."""
        if signature.seq != seq:
            raise InvalidInput(f"the co-signature is of seq {signature.seq}, not {seq}")
        with self.db.write() as session:
            row = session.get(AuditWitnessRow, signature.witness)
            if row is None:
                raise NotFound(f"witness {signature.witness} is not registered")
            stored = session.get(AuditCheckpointRow, seq)
            if stored is None:
                raise NotFound(f"no checkpoint at seq {seq}")
            checkpoint = Checkpoint.from_json(stored.line)
            if checkpoint.head_hash != signature.head_hash:
                raise InvalidInput(f"the co-signature names another head than the checkpoint at seq {seq}")
            try:
                verify_witness(signature, bytes.fromhex(row.public))
            except CryptoError as exc:
                raise InvalidInput(exc.detail) from exc
            if session.get(AuditWitnessSignatureRow, (seq, signature.witness)) is not None:
                raise Conflict(f"witness {signature.witness} has already co-signed seq {seq}")
            session.add(
                AuditWitnessSignatureRow(seq=seq, witness=signature.witness, line=signature.to_json())
            )
            self.audit.append(
                session,
                event="audit.witnessed",
                actor=actor,
                details={"witness": signature.witness, "seq": seq, "head_hash": signature.head_hash},
            )
        return signature

    def signatures_up_to(self, seq: int) -> list[WitnessSignature]:
        """Every co-signature of a checkpoint at or before ``seq`` (the audit bundle's)."""
        with self.db.read() as session:
            rows = session.execute(
                select(AuditWitnessSignatureRow)
                .where(AuditWitnessSignatureRow.seq <= seq)
                .order_by(AuditWitnessSignatureRow.seq, AuditWitnessSignatureRow.witness)
            ).scalars()
            return [WitnessSignature.from_json(r.line) for r in rows]
