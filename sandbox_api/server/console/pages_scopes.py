"""Scopes: an operator's own grants with their rules in words; the policy officer's editor (validated as
they type), versions, approval (never their own: four eyes is the service's rule), reject and revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from starlette.responses import Response

from policies.errors import ScopeInvalid
from policies.model import load_scope
from sandbox_api.roles import Role
from sandbox_api.server.console.web import PREFIX, OfficerV, ScopeV
from sandbox_api.server.services.scopes import ScopeVersionView, parse_stored_view

router = APIRouter(prefix=PREFIX + "/scopes", include_in_schema=False)

DocumentField = Annotated[str, Form(max_length=100_000)]
ReasonField = Annotated[str, Form(max_length=2000)]


@router.get("")
def scopes_page(who: ScopeV) -> Response:
    principal = who.who
    services = who.services
    views = (
        services.scopes.granted_to(principal)
        if principal.role is Role.OPERATOR
        else services.scopes.list_versions()
    )
    return who.page("scopes.html", scopes=described(views), document="", findings=[])


@router.post("/check")
def check_scope(who: OfficerV, document: DocumentField) -> Response:
    """Validation as the officer types (an htmx fragment): every problem with the field it points at."""
    findings = []
    if document.strip():
        try:
            load_scope(document, fmt="yaml")
        except ScopeInvalid as exc:
            findings = [f.to_dict() for f in exc.findings]
    return who.page("fragments/scope_check.html", findings=findings, checked=bool(document.strip()))


@router.post("")
def propose_scope(who: OfficerV, document: DocumentField) -> Response:
    with who.services.db.write() as session:
        who.services.scopes.create(session, actor=who.who, document=document, fmt="yaml")
    return who.redirect(PREFIX + "/scopes")


@router.post("/{name}/versions/{version_id}/approve")
def approve_scope(name: str, version_id: str, who: OfficerV, reason: ReasonField = "") -> Response:
    who.services.scopes.approve(actor=who.who, name=name, version_id=version_id, reason=reason)
    return who.redirect(PREFIX + "/scopes")


@router.post("/{name}/versions/{version_id}/reject")
def reject_scope(name: str, version_id: str, who: OfficerV, reason: ReasonField = "") -> Response:
    with who.services.db.write() as session:
        who.services.scopes.reject(session, actor=who.who, name=name, version_id=version_id, reason=reason)
    return who.redirect(PREFIX + "/scopes")


@router.post("/{name}/versions/{version_id}/revoke")
def revoke_scope(name: str, version_id: str, who: OfficerV, reason: ReasonField = "") -> Response:
    with who.services.db.write() as session:
        who.services.scopes.revoke(session, actor=who.who, name=name, version_id=version_id, reason=reason)
    return who.redirect(PREFIX + "/scopes")


def described(views: list[ScopeVersionView]) -> list[tuple[ScopeVersionView, object]]:
    """Each version with its parsed scope, so the page can say its rules in words."""
    return [(view, parse_stored_view(view)) for view in sorted(views, key=lambda v: (v.name, v.created_at))]
