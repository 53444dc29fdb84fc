"""The admin's desk: domains, principals, tokens (shown once) and key rotation.

A domain administrator has the same desk for their own domain's stewards and operators: the one rule
of who may manage whom is ``server/admin_scope.py``, as on the API, and a refusal is audited the same
way. Domains and key rotation stay an admin's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from starlette.responses import Response

from sandbox_api.roles import Role
from sandbox_api.server import admin_scope
from sandbox_api.server.console.web import PREFIX, AdminV, ManagerV, Visitor
from sandbox_api.server.deps import deny

router = APIRouter(prefix=PREFIX + "/admin", include_in_schema=False)

NameField = Annotated[str, Form(min_length=1, max_length=100)]


def _page(
    who: Visitor,
    *,
    issued: tuple[str, str] | None = None,
    rotated: str | None = None,
    revoked: tuple[str, int] | None = None,
) -> Response:
    services = who.services
    principal = who.who
    if principal.role is Role.ADMIN:
        domains, principals, roles = (
            services.principals.list_domains(),
            services.principals.list_principals(),
            list(Role),
        )
    else:
        domains = [d for d in services.principals.list_domains() if d.name == principal.domain]
        principals = [
            r
            for r in services.principals.list_principals(domain=principal.domain)
            if admin_scope.refusal(principal, role=r.principal.role, domain=r.principal.domain) is None
        ]
        roles = sorted(admin_scope.DOMAIN_MANAGED)
    return who.page(
        "admin.html",
        domains=domains,
        principals=principals,
        roles=roles,
        issued=issued,
        rotated=rotated,
        revoked=revoked,
    )


def _may_manage(who: Visitor, *, role: Role, domain: str | None) -> None:
    reason = admin_scope.refusal(who.who, role=role, domain=domain)
    if reason is not None:
        raise deny(who.services, who.request, who.who, reason)


@router.get("")
def admin_page(who: ManagerV) -> Response:
    return _page(who)


@router.post("/principals")
def create_principal(
    who: ManagerV,
    name: NameField,
    role: Annotated[Role, Form()],
    domain: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    in_domain = domain or None
    if who.who.role is Role.DOMAIN_ADMIN and in_domain is None:
        in_domain = who.who.domain  # a domain administrator's people belong to their domain
    _may_manage(who, role=role, domain=in_domain)
    with who.services.db.write() as session:
        principal, token = who.services.principals.create_principal(
            session, actor=who.who.name, name=name, role=role, domain=in_domain, groups=()
        )
    # The token is shown once, on this answer only, as on the API.
    return _page(who, issued=(principal.name, token.secret))


@router.post("/principals/{name}/tokens")
def issue_token(name: str, who: ManagerV) -> Response:
    target = who.services.principals.record(name).principal
    _may_manage(who, role=target.role, domain=target.domain)
    with who.services.db.write() as session:
        token = who.services.principals.issue_token(session, actor=who.who.name, name=name)
    return _page(who, issued=(name, token.secret))


@router.post("/principals/{name}/tokens/revoke")
def revoke_tokens(name: str, who: ManagerV) -> Response:
    target = who.services.principals.record(name).principal
    _may_manage(who, role=target.role, domain=target.domain)
    with who.services.db.write() as session:
        count = who.services.principals.revoke_tokens(session, actor=who.who.name, name=name)
    return _page(who, revoked=(name, count))


@router.post("/domains")
def create_domain(
    who: AdminV, name: NameField, description: Annotated[str, Form(max_length=2000)] = ""
) -> Response:
    with who.services.db.write() as session:
        who.services.principals.create_domain(session, actor=who.who.name, name=name, description=description)
    return who.redirect(PREFIX + "/admin")


@router.post("/domains/{name}/rotate")
def rotate_domain_key(name: str, who: AdminV) -> Response:
    with who.services.db.write() as session:
        kek_id, _count = who.services.lifecycle.rotate_domain_key(session, actor=who.who.name, name=name)
    return _page(who, rotated=f"{name}: {kek_id}")
