"""What auditors prove with: receipts, the audit bundle, replay."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from sandbox_api.errors import Conflict, Forbidden, NotAuthenticated, NotFound
from sandbox_api.schemas import AuditBundleOut, ReceiptOut, ReplayOut
from sandbox_api.server.deps import AuditorDep, JobReaderDep, ServicesDep
from sandbox_api.server.problems import raises
from sandbox_api.server.routes.witnesses import witness_service
from sandbox_api.server.services.audit_export import build_bundle

router = APIRouter(prefix="/v1", tags=["auditing"])


@router.get(
    "/jobs/{job_id}/receipt",
    summary="The signed receipt of a released job",
    responses=raises(NotAuthenticated, Forbidden, NotFound),
)
def get_receipt(job_id: str, who: JobReaderDep, services: ServicesDep) -> ReceiptOut:
    return ReceiptOut.model_validate(services.receipts.read(who, job_id))


@router.post(
    "/jobs/{job_id}/replay",
    summary="Run a released job again from its receipt's records and compare (auditors; audited)",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict),
)
def replay_job(job_id: str, who: AuditorDep, services: ServicesDep) -> ReplayOut:
    report = services.replay.replay(who, job_id)
    return ReplayOut.model_validate({**asdict(report), "match": report.match})


@router.get(
    "/audit/bundle",
    summary="Events, signed checkpoints and public keys in one JSON document (audited)",
    responses=raises(NotAuthenticated, Forbidden),
)
def audit_bundle(who: AuditorDep, services: ServicesDep) -> AuditBundleOut:
    bundle = build_bundle(
        services.audit, services.keys, services.clock, actor=who.name, witnesses=witness_service(services)
    )
    return AuditBundleOut.model_validate(bundle)
