"""Signed receipts: issued inside the release transaction, stored, served, and re-checked on replay.

A receipt (format in ``sandbox_api.receipt_format``) signs what an auditor needs to prove a release:
job, operator, scope version, dataset versions, query hashes, engine versions, the canonical result
hash, the suppression report and the audit head at release. It is written in the same transaction as
the result and the ``job.released`` event, so a released job without a receipt cannot exist; the
``receipt.signed`` event that follows chains the receipt's digest into the audit log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from crypto.hashing import canonical_json, sha256_hex
from crypto.key_provider import DeploymentKeys
from crypto.profile import INTERNATIONAL, PROFILES, CryptoProfile
from crypto.signing import Signer
from sandbox_api.clock import Clock, iso
from sandbox_api.errors import NotFound
from sandbox_api.receipt_format import RECEIPT_TYPE_BY_PROFILE, receipt_digest, result_facts, sign_receipt
from sandbox_api.roles import Role
from sandbox_api.server.auth import Principal
from sandbox_api.server.services.audit import SYSTEM_ACTOR, AuditLog
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import AuditHeadRow, JobRow, ReceiptRow

# A rotation can land between reading the current key and signing; retry with the new key.
_SIGNING_ATTEMPTS = 3


def query_facts(row: JobRow) -> dict[str, Any]:
    """The ``query`` member: kind, hashes of what the operator sent and of what actually ran."""
    source = row.code if row.code else row.sql
    return {
        "kind": row.kind or "sql",
        "mode": row.mode or "real",
        "original_sha256": sha256_hex(source.encode("utf-8")),
        "rewritten_sha256": None
        if row.rewritten_sql is None
        else sha256_hex(row.rewritten_sql.encode("utf-8")),
        "passes": list(row.applied),
    }


@dataclass(frozen=True)
class ReceiptService:
    db: Database
    audit: AuditLog
    clock: Clock
    keys: DeploymentKeys
    # The deployment's algorithms: the receipt format (so the signature) new receipts are issued in.
    profile: CryptoProfile = PROFILES[INTERNATIONAL]

    def issue(
        self,
        session: Session,
        row: JobRow,
        *,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        result_hash: str,
        report: Mapping[str, Any],
        engine: Mapping[str, str],
        output: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Sign, store and log the receipt of ``row``, whose release is in ``session`` (call it after the
        ``job.released`` event, so the audit head it signs is that event)."""
        head = session.get(AuditHeadRow, 1)
        body: dict[str, Any] = {
            "type": RECEIPT_TYPE_BY_PROFILE[self.profile.name],
            "job_id": row.id,
            "operator": row.owner,
            "scope": _scope_member(row),
            "datasets": dict(sorted(dict(row.dataset_versions).items())),
            "query": query_facts(row),
            "engine": {str(k): str(v) for k, v in sorted(engine.items())},
            "result": result_facts(canonical_hash=result_hash, columns=columns, rows=rows, output=output),
            "suppression": dict(report),
            "audit_head": None if head is None else {"seq": head.seq, "hash": head.hash},
        }
        if self.profile.name != INTERNATIONAL:  # v2 receipts say it by their type alone, as before
            body["profile"] = self.profile.name
        pair, signed_at = self._valid_key()
        receipt = sign_receipt(pair, {**body, "signed_at": iso(signed_at)})
        session.add(
            ReceiptRow(
                job_id=row.id,
                kid=pair.kid,
                document=canonical_json(receipt).decode("utf-8"),
                created_at=signed_at,
            )
        )
        self.audit.append(
            session,
            event="receipt.signed",
            actor=SYSTEM_ACTOR,
            details={
                "job": row.id,
                "kid": pair.kid,
                "receipt_sha256": receipt_digest(receipt),
                "result_hash": result_hash,
            },
        )
        return receipt

    def _valid_key(self) -> tuple[Signer, datetime]:
        """The current signing key and a signing time inside its validity period."""
        for _ in range(_SIGNING_ATTEMPTS):
            pair = self.profile.require_signer(
                self.keys.ensure_signing_key(now=self.clock.now(), algorithm=self.profile.signature)
            )
            now = self.clock.now()
            record = next((k for k in self.keys.signing_keys() if k.kid == pair.kid), None)
            if record is not None and record.valid_at(now):
                return pair, now
        return pair, now  # a clock running backwards: sign anyway; verification will say why it fails

    @staticmethod
    def load(session: Session, job_id: str) -> dict[str, Any] | None:
        stored = session.get(ReceiptRow, job_id)
        if stored is None:
            return None
        document: dict[str, Any] = json.loads(stored.document)
        return document

    def read(self, who: Principal, job_id: str) -> dict[str, Any]:
        """The receipt of a released job: its operator, auditors and admins may read it (audited)."""
        with self.db.read() as session:
            row = session.get(JobRow, job_id)
            if row is None or (who.role is Role.OPERATOR and row.owner != who.name):
                raise NotFound(f"job {job_id} does not exist")
            receipt = self.load(session, job_id)
            if receipt is None:
                raise NotFound(f"job {job_id} is {row.state}; only a released job has a receipt")
        self.audit.record(event="receipt.read", actor=who.name, details={"job": job_id})
        return receipt


def _scope_member(row: JobRow) -> dict[str, Any]:
    """The scope version, and (from receipt v2 on) the catalog the job was checked against: every
    dataset the scope names at its version then, so that replay's rebuilt context is signed too."""
    member: dict[str, Any] = {"name": row.scope, "version_id": row.scope_version}
    if row.catalog_versions is not None:
        member["catalog"] = dict(sorted(dict(row.catalog_versions).items()))
    return member
