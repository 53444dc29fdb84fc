"""The admin's desk: domains, principals, tokens (shown once) and key rotation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from starlette.responses import Response

from sandbox_api.roles import Role
from sandbox_api.server.console.web import PREFIX, AdminV

router = APIRouter(prefix=PREFIX + "/admin", include_in_schema=False)

NameField = Annotated[str, Form(min_length=1, max_length=100)]


def _page(
    who: AdminV,
    *,
    issued: tuple[str, str] | None = None,
    rotated: str | None = None,
    revoked: tuple[str, int] | None = None,
) -> Response:
    services = who.services
    return who.page(
        "admin.html",
        domains=services.principals.list_domains(),
        principals=services.principals.list_principals(),
        roles=list(Role),
        issued=issued,
        rotated=rotated,
        revoked=revoked,
    )


@router.get("")
def admin_page(who: AdminV) -> Response:
    return _page(who)


@router.post("/principals")
def create_principal(
    who: AdminV,
    name: NameField,
    role: Annotated[Role, Form()],
    domain: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    with who.services.db.write() as session:
        principal, token = who.services.principals.create_principal(
            session, actor=who.who.name, name=name, role=role, domain=domain or None, groups=()
        )
    # The token is shown once, on this answer only, as on the API.
    return _page(who, issued=(principal.name, token.secret))


@router.post("/principals/{name}/tokens")
def issue_token(name: str, who: AdminV) -> Response:
    with who.services.db.write() as session:
        token = who.services.principals.issue_token(session, actor=who.who.name, name=name)
    return _page(who, issued=(name, token.secret))


@router.post("/principals/{name}/tokens/revoke")
def revoke_tokens(name: str, who: AdminV) -> Response:
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
