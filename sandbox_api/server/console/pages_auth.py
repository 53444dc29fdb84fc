"""Everyone's pages: sign in with a token, sign out, who am I, the language switch. Sign-in by redirect
to the single sign-on issuer is in ``pages_sso``; both open the session here."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Form
from starlette.responses import Response

from sandbox_api.errors import NotAuthenticated
from sandbox_api.server.auth import MAX_BEARER_CHARS, Principal, parse_bearer
from sandbox_api.server.console.session import LANG_COOKIE
from sandbox_api.server.console.web import (
    PREFIX,
    Anyone,
    CsrfVisitorDep,
    Visitor,
    VisitorDep,
    home_of,
    known_language,
)
from sandbox_api.server.deps import authenticate_token
from sandbox_api.server.sso import looks_like_jwt

router = APIRouter(prefix=PREFIX, include_in_schema=False)

MAX_COOKIE_CHARS = 4000
TOO_LONG = "this token is too long to keep in a browser cookie; sign in with a bearer token an admin issues"


@router.get("")
def console_root(who: VisitorDep) -> Response:
    return who.redirect(home_of(who.principal.role) if who.principal else PREFIX + "/sign-in")


@router.get("/sign-in")
def sign_in_page(who: VisitorDep) -> Response:
    return sign_in_again(who, 200, None)


@router.post("/sign-in")
def sign_in(who: CsrfVisitorDep, token: Annotated[str, Form(max_length=MAX_BEARER_CHARS)]) -> Response:
    services = who.services
    presented = parse_bearer(f"Bearer {token.strip()}")
    try:
        if presented is None:
            raise NotAuthenticated("paste the token an admin issued you")
        principal = authenticate_token(services, presented)
    except NotAuthenticated as exc:
        services.audit.record(
            event="auth.failed",
            actor="anonymous",
            details={"method": "POST", "path": who.request.url.path, "reason": exc.detail},
        )
        return sign_in_again(who, 401, exc.detail)
    if not open_session(who, presented, principal, method="sso" if looks_like_jwt(presented) else "token"):
        return sign_in_again(who, 422, TOO_LONG)
    return who.redirect(home_of(principal.role))


def open_session(who: Visitor, token: str, principal: Principal, *, method: str) -> bool:
    """The console session for ``token`` (already authenticated as ``principal``), audited as
    ``console.signed_in``; False when the token is too long for a cookie (nothing is opened)."""
    # A fresh nonce on sign-in: a session planted before sign-in is worth nothing after it.
    session = who.state.keys.new_session(now=time.time(), token=token)
    if len(who.state.keys.dump(session)) > MAX_COOKIE_CHARS:
        # Browsers drop a larger cookie silently: say so rather than sign in to nothing.
        return False
    who.start_session(session)
    who.principal = principal
    who.services.audit.record(
        event="console.signed_in",
        actor=principal.name,
        details={"role": principal.role.value, "method": method},
    )
    return True


def sign_in_again(who: Visitor, status_code: int, error: str | None) -> Response:
    """The sign-in page (with the single sign-on button where it is configured)."""
    return who.page("sign_in.html", status_code=status_code, error=error, sso=who.state.code_flow is not None)


@router.post("/sign-out")
def sign_out(who: Anyone) -> Response:
    who.services.audit.record(
        event="console.signed_out", actor=who.who.name, details={"role": who.who.role.value}
    )
    who.state.signed_out.add(who.session)
    who.start_session(who.state.keys.new_session(now=time.time()))
    who.principal = None
    return who.redirect(PREFIX + "/sign-in")


@router.post("/language")
def switch_language(
    who: CsrfVisitorDep,
    to: Annotated[str, Form(max_length=8)],
    back: Annotated[str, Form(max_length=300)] = PREFIX,
) -> Response:
    code = known_language(to)
    if code is not None:
        who.cookies[LANG_COOKIE] = code
    # Only back to a console page of this site: never an open redirect.
    safe = back.startswith(PREFIX) and "//" not in back and "\\" not in back
    return who.redirect(back if safe else PREFIX)


@router.get("/home")
def home(who: Anyone) -> Response:
    return who.page("home.html", home=home_of(who.who.role))
