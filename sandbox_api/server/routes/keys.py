"""Signing keys (published, rotated) and crypto-shredding of dataset versions.

``GET /v1/keys/signing`` needs no token, on purpose: public keys are public, anyone who holds a receipt
must be able to fetch them to verify it (like a JWKS endpoint), and the answer reveals nothing a
receipt does not. It is not audited, so anonymous callers cannot grow the audit log. Verifiers should
still pin a copy obtained out of band (``sandbox keys export``): a key fetched over an untrusted path
proves nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from sandbox_api.clock import iso
from sandbox_api.errors import Conflict, Forbidden, NotAuthenticated, NotFound
from sandbox_api.roles import Role
from sandbox_api.schemas import ShredOut, ShredRequest, SigningKeyRotated, SigningKeysOut
from sandbox_api.server.deps import AdminDep, PrincipalDep, ServicesDep, deny
from sandbox_api.server.problems import raises
from sandbox_api.server.services.keys import keys_document

router = APIRouter(prefix="/v1", tags=["keys"])


@router.get(
    "/keys/signing",
    summary="Public signing keys with their validity periods (no token needed); save it to verify offline",
    responses=raises(),
)
def signing_keys(services: ServicesDep) -> SigningKeysOut:
    document = keys_document(services.lifecycle.signing_keys())
    return SigningKeysOut.model_validate(document)


@router.post(
    "/keys/signing/rotate",
    summary="Start signing with a new key; the old one stays published with its end date",
    responses=raises(NotAuthenticated, Forbidden),
)
def rotate_signing_key(who: AdminDep, services: ServicesDep) -> SigningKeyRotated:
    record, retired = services.lifecycle.rotate_signing_key(actor=who.name)
    return SigningKeyRotated(kid=record.kid, not_before=iso(record.not_before), retired=retired)


@router.post(
    "/datasets/{domain}/{name}/versions/{version}/shred",
    summary="Crypto-shred a version: its data key is destroyed and its data can never be read again",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict),
)
def shred_version(
    domain: str,
    name: str,
    version: str,
    request: Request,
    who: PrincipalDep,
    services: ServicesDep,
    body: ShredRequest | None = None,
) -> ShredOut:
    steward_here = who.role is Role.STEWARD and who.domain == domain
    if not (steward_here or who.role is Role.ADMIN):
        raise deny(
            services,
            request,
            who,
            f"only a steward of domain {domain!r} or an admin may crypto-shred its data",
        )
    shredded = services.lifecycle.shred(
        actor=who.name,
        domain=domain,
        name=name,
        version_id=version,
        reason=body.reason if body is not None else "",
    )
    return ShredOut(
        dataset=shredded.dataset,
        version_id=shredded.version_id,
        shredded_at=shredded.shredded_at,
        shredded_by=shredded.shredded_by,
        reason=shredded.reason,
    )
