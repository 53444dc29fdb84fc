"""The audit bundle: events, signed checkpoints and public keys in one JSON document (docs/design.md §9).

``sandbox audit verify BUNDLE`` (``sandbox_api.client.verify.verify_bundle``) checks it offline. The export is
itself audited, and its event is part of the bundle: the bundle ends with a checkpoint of the head
signed at export time, so a bundle whose tail was cut afterwards no longer matches its own signature.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from crypto.audit import Checkpoint
from crypto.key_provider import DeploymentKeys
from sandbox_api.bundle_format import BUNDLE_FORMAT
from sandbox_api.clock import Clock, iso
from sandbox_api.server.services.audit import AuditLog, to_entry
from sandbox_api.server.services.witnesses import WitnessService
from sandbox_api.server.store.models import AuditCheckpointRow, AuditEventRow

_BATCH = 1000


def build_bundle(
    audit: AuditLog,
    keys: DeploymentKeys,
    clock: Clock,
    *,
    actor: str,
    witnesses: WitnessService | None = None,
) -> dict[str, Any]:
    """Log the export, then return everything up to and including that event, signed at the head,
    with the witnesses' co-signatures of the checkpoints when ``witnesses`` is given."""
    exported = audit.record(event="audit.exported", actor=actor, details={"format": "bundle"})
    events: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    with audit.db.read() as session:
        last = -1
        while True:
            page = session.execute(
                select(AuditEventRow)
                .where(AuditEventRow.seq > last, AuditEventRow.seq <= exported.seq)
                .order_by(AuditEventRow.seq)
                .limit(_BATCH)
            ).scalars()
            batch = [to_entry(row) for row in page]
            events.extend(json.loads(entry.to_json()) for entry in batch)
            if len(batch) < _BATCH:
                break
            last = batch[-1].seq
        for row in session.execute(
            select(AuditCheckpointRow)
            .where(AuditCheckpointRow.seq <= exported.seq)
            .order_by(AuditCheckpointRow.seq)
        ).scalars():
            checkpoints.append(Checkpoint.from_json(row.line).to_dict())
    head = audit.sign_head(seq=exported.seq, head_hash=exported.hash)
    return {
        "format": BUNDLE_FORMAT,
        "exported_at": iso(clock.now()),
        "exported_by": actor,
        "head": {"seq": exported.seq, "hash": exported.hash, "checkpoint": head.to_dict()},
        "events": events,
        "checkpoints": checkpoints,
        "signing_keys": [record.to_dict() for record in keys.signing_keys()],
        "witnesses": [] if witnesses is None else [w.to_dict() for w in witnesses.witnesses()],
        "witness_signatures": []
        if witnesses is None
        else [s.to_dict() for s in witnesses.signatures_up_to(exported.seq)],
        "witnesses_required": [] if witnesses is None else list(witnesses.required),
    }
