"""What auditors prove with: receipts, the audit bundle, replay."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from sandbox_api.deps import AuditorDep, JobReaderDep, ServicesDep
from sandbox_api.services.audit_export import build_bundle

router = APIRouter(prefix="/v1", tags=["auditing"])


class ReceiptOut(BaseModel):
    """A signed receipt; unknown members are kept, since every member but ``signature`` is signed."""

    model_config = ConfigDict(extra="allow")

    type: str
    job_id: str
    operator: str
    scope: dict[str, Any]
    datasets: dict[str, str]
    query: dict[str, Any]
    engine: dict[str, str]
    result: dict[str, Any]
    suppression: dict[str, Any]
    audit_head: dict[str, Any] | None
    signed_at: str
    kid: str
    signature: str = Field(description="Ed25519 over the canonical JSON of every other member, hex")


class AuditBundleOut(BaseModel):
    format: str
    exported_at: str
    exported_by: str
    head: dict[str, Any] = Field(description="{seq, hash, checkpoint}: the head signed at export time")
    events: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    signing_keys: list[dict[str, Any]]


class MismatchOut(BaseModel):
    field: str
    expected: Any
    actual: Any
    message: str
    kind: str = Field(
        description="release-differs (the evidence and the replay disagree: an incident) | "
        "context-unavailable (replay could not rebuild the job's context: a replay defect)"
    )


class ShreddedOut(BaseModel):
    dataset: str
    version_id: str
    shredded_at: str
    shredded_by: str
    reason: str


class ReplayOut(BaseModel):
    job_id: str
    outcome: str = Field(description="match | mismatch | data-destroyed | not-replayable")
    match: bool
    message: str
    receipt_kid: str
    expected_result_hash: str
    actual_result_hash: str | None
    mismatches: list[MismatchOut]
    destroyed: list[ShreddedOut]
    notes: list[str]
    engine: dict[str, str]
    replayed_at: str
    replayed_by: str
    kind: str | None = Field(
        description="of a mismatch: release-differs (an incident: tampering or non-determinism) or "
        "context-unavailable (replay could not rebuild the context; the message says what is missing); "
        "release-differs wins when both occur; null otherwise"
    )


@router.get("/jobs/{job_id}/receipt", summary="The signed receipt of a released job")
def get_receipt(job_id: str, who: JobReaderDep, services: ServicesDep) -> ReceiptOut:
    return ReceiptOut.model_validate(services.receipts.read(who, job_id))


@router.post(
    "/jobs/{job_id}/replay",
    summary="Run a released job again from its receipt's records and compare (auditors; audited)",
)
def replay_job(job_id: str, who: AuditorDep, services: ServicesDep) -> ReplayOut:
    report = services.replay.replay(who, job_id)
    return ReplayOut.model_validate({**asdict(report), "match": report.match})


@router.get(
    "/audit/bundle",
    summary="Events, signed checkpoints and public keys in one JSON document (audited)",
)
def audit_bundle(who: AuditorDep, services: ServicesDep) -> AuditBundleOut:
    bundle = build_bundle(services.audit, services.keys, services.clock, actor=who.name)
    return AuditBundleOut.model_validate(bundle)
