"""Everyone's pages: sign in with a token, sign out, who am I, the language switch."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Form
from starlette.responses import Response

from sandbox_api.errors import NotAuthenticated
from sandbox_api.server.auth import MAX_BEARER_CHARS, parse_bearer
from sandbox_api.server.console.session import LANG_COOKIE
from sandbox_api.server.console.web import (
    PREFIX,
    Anyone,
    CsrfVisitorDep,
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
    return who.page("sign_in.html", error=None)


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
        return who.page("sign_in.html", status_code=401, error=exc.detail)
    # A fresh nonce on sign-in: a session planted before sign-in is worth nothing after it.
    session = who.state.keys.new_session(now=time.time(), token=presented)
    if len(who.state.keys.dump(session)) > MAX_COOKIE_CHARS:
        # Browsers drop a larger cookie silently: say so rather than sign in to nothing.
        return who.page("sign_in.html", status_code=422, error=TOO_LONG)
    who.start_session(session)
    who.principal = principal
    services.audit.record(
        event="console.signed_in",
        actor=principal.name,
        details={"role": principal.role.value, "method": "sso" if looks_like_jwt(presented) else "token"},
    )
    return who.redirect(home_of(principal.role))


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
