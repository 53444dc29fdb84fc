"""Scopes: an operator's own grants with their rules in words; the policy officer's editor (validated as
they type), versions, approval (never their own: four eyes is the service's rule), reject and revoke."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form
from starlette.responses import Response

from policies.errors import ScopeInvalid
from policies.model import Scope, load_scope
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
            findings = [{**f.to_dict(), "line": line_of(document, f.fragment)} for f in exc.findings]
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


@dataclass(frozen=True)
class Described:
    view: ScopeVersionView
    scope: Scope
    # For a pending version: what changed since the scope's previous version (unified diff lines), so
    # the approving officer reads the change, not only the result.
    diff: tuple[str, ...]


def described(views: list[ScopeVersionView]) -> list[Described]:
    """Each version with its parsed scope (its rules in words) and, when pending, its diff."""
    ordered = sorted(views, key=lambda v: (v.name, v.created_at))
    out = []
    for at, view in enumerate(ordered):
        earlier = [v for v in ordered[:at] if v.name == view.name]
        diff = version_diff(earlier[-1], view) if view.state == "pending" and earlier else ()
        out.append(Described(view, parse_stored_view(view), diff))
    return out


def version_diff(old: ScopeVersionView, new: ScopeVersionView) -> tuple[str, ...]:
    """Line diff of two versions' documents (as indented JSON, keys sorted: stable whatever the
    officers' YAML layout was).

    >>> a = ScopeVersionView("s", "1", "approved", "o", [], 2, "", "", None, {"k": 10}, True, None)
    >>> b = ScopeVersionView("s", "2", "pending", "o", [], 2, "", "", None, {"k": 5}, False, None)
    >>> [line for line in version_diff(a, b) if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    ['-  "k": 10', '+  "k": 5']
    """
    before = json.dumps(old.document, indent=2, sort_keys=True).splitlines()
    after = json.dumps(new.document, indent=2, sort_keys=True).splitlines()
    return tuple(
        difflib.unified_diff(before, after, old.version_id[:12], new.version_id[:12], lineterm="", n=2)
    )


def line_of(document: str, field: str) -> int | None:
    r"""The 1-based line of the YAML key that ``field`` (a dotted path such as ``disclosure.min_units``)
    names, looking for each part below the line of the one before; None when it cannot be placed.

    >>> line_of("scope: a\ndisclosure:\n  min_unitz: 3\n", "disclosure.min_unitz")
    3
    >>> line_of("scope: a\n", "purpose") is None
    True
    """
    lines = document.splitlines()
    at = 0
    found = None
    for part in [p for p in field.split(".") if p and not p.isdigit()]:
        pattern = re.compile(r"^\s*(-\s*)?[\"']?" + re.escape(part) + r"[\"']?\s*:")
        hit = next((i for i in range(at, len(lines)) if pattern.match(lines[i])), None)
        if hit is None:
            return found
        found, at = hit + 1, hit + 1
    return found
