"""Scopes: propose a version, approve (a different officer), reject, revoke, list."""

from __future__ import annotations

from dataclasses import asdict
from itertools import groupby

from fastapi import APIRouter, Response, status

from policies.errors import ScopeInvalid, UnknownReference
from sandbox_api.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    ScopeInconsistent,
)
from sandbox_api.roles import Role
from sandbox_api.schemas import Decision, ScopeCreate, ScopeCreated, ScopeOut, ScopeVersionOut
from sandbox_api.server.deps import OfficerDep, ScopeReaderDep, ServicesDep
from sandbox_api.server.openapi_doc import link
from sandbox_api.server.problems import raises
from sandbox_api.server.services.scopes import ScopeVersionView

router = APIRouter(prefix="/v1/scopes", tags=["scopes"])

# What a proposed version leads to (OpenAPI links).
VERSION = {"name": "$response.body#/version/name", "version_id": "$response.body#/version/version_id"}
VERSION_LINKS = (
    ("ApproveScope", "approve_scope"),
    ("RejectScope", "reject_scope"),
    ("RevokeScope", "revoke_scope"),
)


def version_out(view: ScopeVersionView) -> ScopeVersionOut:
    return ScopeVersionOut.model_validate(asdict(view))


def grouped(views: list[ScopeVersionView]) -> list[ScopeOut]:
    out = []
    for name, versions in groupby(sorted(views, key=lambda v: v.name), key=lambda v: v.name):
        items = list(versions)
        active = next((v.version_id for v in items if v.active), None)
        out.append(ScopeOut(name=name, active_version=active, versions=[version_out(v) for v in items]))
    return out


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Propose a scope version (pending until another officer approves)",
    responses={
        **raises(
            NotAuthenticated,
            Forbidden,
            Conflict,
            InvalidInput,
            ScopeInvalid,
            ScopeInconsistent,
            UnknownReference,
        ),
        200: {"description": "this exact version already existed", "model": ScopeCreated},
        201: {"links": {name: link(target, **VERSION) for name, target in VERSION_LINKS}},
    },
)
def create_scope(
    body: ScopeCreate, response: Response, who: OfficerDep, services: ServicesDep
) -> ScopeCreated:
    with services.db.write() as session:
        view, created = services.scopes.create(session, actor=who, document=body.document, fmt=body.format)
    if not created:
        response.status_code = status.HTTP_200_OK
    return ScopeCreated(created=created, version=version_out(view))


@router.get(
    "",
    summary="Scopes and their versions (operators: only their active scopes)",
    responses=raises(NotAuthenticated, Forbidden),
)
def list_scopes(who: ScopeReaderDep, services: ServicesDep) -> list[ScopeOut]:
    if who.role is Role.OPERATOR:
        return grouped(services.scopes.granted_to(who))
    return grouped(services.scopes.list_versions())


@router.get(
    "/{name}",
    summary="One scope with its versions and their states",
    responses=raises(NotAuthenticated, Forbidden, NotFound),
)
def get_scope(name: str, who: ScopeReaderDep, services: ServicesDep) -> ScopeOut:
    views = services.scopes.granted_to(who) if who.role is Role.OPERATOR else services.scopes.list_versions()
    found = grouped([v for v in views if v.name == name])
    if not found:
        raise NotFound(
            f"scope {name!r} does not exist"
            + (" or is not active for you" if who.role is Role.OPERATOR else "")
        )
    return found[0]


@router.post(
    "/{name}/versions/{version_id}/approve",
    summary="Approve (never the author, never a grantee)",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict, ScopeInconsistent),
)
def approve_scope(
    name: str, version_id: str, body: Decision, who: OfficerDep, services: ServicesDep
) -> ScopeVersionOut:
    view = services.scopes.approve(actor=who, name=name, version_id=version_id, reason=body.reason)
    return version_out(view)


@router.post(
    "/{name}/versions/{version_id}/reject",
    summary="Reject a pending version",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict),
)
def reject_scope(
    name: str, version_id: str, body: Decision, who: OfficerDep, services: ServicesDep
) -> ScopeVersionOut:
    with services.db.write() as session:
        view = services.scopes.reject(
            session, actor=who, name=name, version_id=version_id, reason=body.reason
        )
    return version_out(view)


@router.post(
    "/{name}/versions/{version_id}/revoke",
    summary="Revoke a version: no new job may use it",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict),
)
def revoke_scope(
    name: str, version_id: str, body: Decision, who: OfficerDep, services: ServicesDep
) -> ScopeVersionOut:
    with services.db.write() as session:
        view = services.scopes.revoke(
            session, actor=who, name=name, version_id=version_id, reason=body.reason
        )
    return version_out(view)
