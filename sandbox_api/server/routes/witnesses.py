"""Audit witnesses: registration (admin) and co-signatures of checkpoints (auditors holding a witness
key). docs/auditing.md, "Witnessed checkpoints"."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from crypto.errors import CryptoError
from crypto.witness import WitnessSignature
from sandbox_api.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from sandbox_api.schemas import (
    CheckpointOut,
    WitnessedCheckpointOut,
    WitnessedCheckpointPage,
    WitnessIn,
    WitnessOut,
    WitnessSignatureIn,
    WitnessSignatureOut,
)
from sandbox_api.server.deps import AdminDep, AlertReaderDep, AuditorDep, Services, ServicesDep
from sandbox_api.server.problems import raises
from sandbox_api.server.services.witnesses import Witness, WitnessService

router = APIRouter(prefix="/v1", tags=["audit"])


def witness_service(services: Services) -> WitnessService:
    """Stateless over the database and the audit log, so built per request."""
    return WitnessService(
        db=services.db,
        audit=services.audit,
        clock=services.clock,
        required=tuple(services.settings.audit_witnesses_required),
    )


def _out(w: Witness) -> WitnessOut:
    return WitnessOut(
        name=w.name,
        domain=w.domain,
        kid=w.kid,
        algorithm=w.algorithm,
        public_key=w.public.hex(),
        registered_by=w.registered_by,
        registered_at=w.registered_at,
    )


@router.post(
    "/witnesses",
    status_code=201,
    summary="Register an audit witness with its public key (audited)",
    responses=raises(NotAuthenticated, Forbidden, InvalidInput, NotFound, Conflict),
)
def register_witness(body: WitnessIn, who: AdminDep, services: ServicesDep) -> WitnessOut:
    witness = witness_service(services).register(
        actor=who.name, name=body.name, domain=body.domain, public_key=body.public_key
    )
    return _out(witness)


@router.get(
    "/witnesses",
    summary="The registered audit witnesses and their public keys",
    responses=raises(NotAuthenticated, Forbidden),
)
def list_witnesses(who: AlertReaderDep, services: ServicesDep) -> list[WitnessOut]:
    return [_out(w) for w in witness_service(services).witnesses()]


@router.get(
    "/audit/checkpoints",
    summary="Signed checkpoints with their witness co-signatures and the required witnesses they lack",
    responses=raises(NotAuthenticated, Forbidden, NotFound),
)
def list_checkpoints(
    who: AuditorDep,
    services: ServicesDep,
    unwitnessed_by: Annotated[
        str | None, Query(max_length=64, description="only those this witness has yet to co-sign")
    ] = None,
    since_seq: Annotated[int | None, Query(ge=-1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> WitnessedCheckpointPage:
    service = witness_service(services)
    found = service.checkpoints(unwitnessed_by=unwitnessed_by, since_seq=since_seq, limit=limit)
    return WitnessedCheckpointPage(
        required=list(service.required),
        checkpoints=[
            WitnessedCheckpointOut(
                checkpoint=CheckpointOut(**{**c.checkpoint.to_dict(), "type": c.checkpoint.type}),
                witness_signatures=[WitnessSignatureOut.model_validate(s.to_dict()) for s in c.signatures],
                missing=c.missing,
            )
            for c in found
        ],
        next_since_seq=found[-1].checkpoint.seq if len(found) == limit else None,
    )


@router.post(
    "/audit/checkpoints/{seq}/witness",
    status_code=201,
    summary="Store a witness's co-signature of the checkpoint at `seq` (verified, audited)",
    responses=raises(NotAuthenticated, Forbidden, InvalidInput, NotFound, Conflict),
)
def cosign_checkpoint(
    seq: int, body: WitnessSignatureIn, who: AuditorDep, services: ServicesDep
) -> WitnessSignatureOut:
    try:
        signature = WitnessSignature.from_dict(body.model_dump())
    except CryptoError as exc:
        raise InvalidInput(exc.detail) from exc
    stored = witness_service(services).cosign(actor=who.name, seq=seq, signature=signature)
    return WitnessSignatureOut.model_validate(stored.to_dict())
