"""Console sign-in by redirect to the single sign-on issuer: the authorisation code flow with PKCE.

``GET /console/sign-in/sso`` makes a fresh ``state``, ``nonce`` and PKCE verifier, seals them in a
short-lived cookie and sends the browser to the issuer with the challenge. It is a link, not a form: the
console's ``form-action 'self'`` rightly stops a form whose answer redirects to another site, and
starting a sign-in changes nothing but the visitor's own flow cookie (forcing one on someone signs them in
as themselves at best; ``state`` is what stops signing them in as someone else).
The issuer sends it back to ``GET /console/sign-in/sso/callback`` with a code. The callback then:

1. opens the flow cookie and removes it (one use): no cookie, no sign-in. A code arriving in a browser
   that did not start the sign-in, or a second time, finds nothing to finish;
2. compares ``state`` with the sealed one (RFC 6749 section 10.12: an attacker's code cannot sign the
   victim in to the attacker's account);
3. redeems the code with the verifier (RFC 7636): an intercepted code is useless without it, and the
   issuer refuses a code used twice;
4. verifies the ID token with ``SingleSignOn``, the check every API request with an ID token gets, and
   requires its ``nonce`` to be the sealed one (OpenID Connect Core section 3.1.3.7: no replayed token);
5. opens the same console session as a sign-in with a token, audited as ``console.signed_in`` with
   method ``sso``. Every failure is ``auth.failed`` and the sign-in page, as for a wrong token.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from crypto.pkce import new_verifier, random_token
from sandbox_api.errors import NotAuthenticated, NotFound
from sandbox_api.server.console.pages_auth import TOO_LONG, open_session, sign_in_again
from sandbox_api.server.console.session import FLOW_COOKIE, FLOW_SECONDS, Flow
from sandbox_api.server.console.web import PREFIX, Visitor, VisitorDep, home_of, set_cookie
from sandbox_api.server.deps import authenticate_token
from sandbox_api.server.sso import SingleSignOn
from sandbox_api.server.sso_redirect import CodeFlow

router = APIRouter(prefix=PREFIX + "/sign-in/sso", include_in_schema=False)

CALLBACK = "sso_callback"
Param = Annotated[str | None, Query(max_length=2048)]


def _code_flow(who: Visitor) -> tuple[CodeFlow, SingleSignOn]:
    flow, sso = who.state.code_flow, who.services.sso
    if flow is None or sso is None:
        raise NotFound("single sign-on is not configured here; sign in with a token")
    return flow, sso


@router.get("")
def start_sso(who: VisitorDep) -> Response:
    code_flow, _ = _code_flow(who)
    redirect_uri = code_flow.redirect_url or str(who.request.url_for(CALLBACK))
    flow = Flow(
        state=random_token(),
        nonce=random_token(),
        verifier=new_verifier(),
        redirect_uri=redirect_uri,
        expires=time.time() + FLOW_SECONDS,
    )
    target = code_flow.authorize_url(
        redirect_uri=redirect_uri, state=flow.state, nonce=flow.nonce, verifier=flow.verifier
    )
    response = who.redirect(target)
    set_cookie(response, FLOW_COOKIE, who.state.keys.dump_flow(flow), max_age=FLOW_SECONDS, samesite="lax")
    return response


@router.get("/callback", name=CALLBACK)
def sso_callback(who: VisitorDep, code: Param = None, state: Param = None, error: Param = None) -> Response:
    code_flow, sso = _code_flow(who)
    flow = who.state.keys.load_flow(who.request.cookies.get(FLOW_COOKIE), now=time.time())
    try:
        if flow is None:
            raise NotAuthenticated(
                "this sign-in was not started in this browser, was already used, or took longer than "
                "10 minutes: start again"
            )
        if state is None or not secrets.compare_digest(state.encode(), flow.state.encode()):
            raise NotAuthenticated("the issuer's answer does not belong to the sign-in this browser started")
        if error is not None:
            raise NotAuthenticated(f"the issuer did not sign you in ({error[:64]})")
        if not code:
            raise NotAuthenticated("the issuer's answer carries no code")
        id_token = code_flow.exchange(code=code, redirect_uri=flow.redirect_uri, verifier=flow.verifier)
        nonce = sso.claims(id_token).get("nonce")
        if not isinstance(nonce, str) or not secrets.compare_digest(nonce.encode(), flow.nonce.encode()):
            raise NotAuthenticated("the ID token was not issued for this sign-in (its nonce differs)")
        principal = authenticate_token(who.services, id_token)
    except NotAuthenticated as exc:
        who.services.audit.record(
            event="auth.failed",
            actor="anonymous",
            details={"method": "GET", "path": who.request.url.path, "reason": exc.detail},
        )
        return _forget_flow(sign_in_again(who, 401, exc.detail))
    if not open_session(who, id_token, principal, method="sso"):
        return _forget_flow(sign_in_again(who, 422, TOO_LONG))
    # A page, not a redirect: the browser arrived here from the issuer's site, and would withhold the
    # SameSite=Strict session cookie on a redirect in the same chain. The page moves on by itself.
    return _forget_flow(who.page("signed_in.html", home=home_of(principal.role)))


def _forget_flow(response: Response) -> Response:
    response.delete_cookie(FLOW_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return response
