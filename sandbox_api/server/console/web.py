"""What every console request goes through: the session cookie, the language, sign-in, the role gate and
the CSRF check.

The role gate is the API's: a refused page records the same ``request.denied`` event through
``deps.deny``, and a page calls the same services with the same principal as the API route would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from starlette.responses import RedirectResponse, Response

from sandbox_api.errors import Forbidden, NotAuthenticated
from sandbox_api.roles import Role
from sandbox_api.server.auth import Principal
from sandbox_api.server.console.chain_watch import ChainWatch
from sandbox_api.server.console.i18n import LANGUAGES, Language, negotiate
from sandbox_api.server.console.rendering import Renderer
from sandbox_api.server.console.session import COOKIE, LANG_COOKIE, Session, SessionKeys, SignedOut
from sandbox_api.server.deps import Services, ServicesDep, authenticate_token, deny
from sandbox_api.server.sso_redirect import CodeFlow

PREFIX = "/console"
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class ConsoleState:
    """Built once by ``install_console`` and kept on ``app.state.console``."""

    renderer: Renderer
    keys: SessionKeys
    signed_out: SignedOut
    chain_watch: ChainWatch
    code_flow: CodeFlow | None = None  # None: no sign-in by redirect (single sign-on is off)


def console_state(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


StateDep = Annotated[ConsoleState, Depends(console_state)]


@dataclass
class Visitor:
    """One request's view of the console: session, language, and (when signed in) the principal."""

    request: Request
    services: Services
    state: ConsoleState
    session: Session
    language: Language
    fresh: bool  # the session was created by this request: its cookie must be sent
    principal: Principal | None = None
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def csrf(self) -> str:
        return self.state.keys.csrf_token(self.session)

    @property
    def who(self) -> Principal:
        if self.principal is None:
            raise NotAuthenticated("sign in with your token")
        return self.principal

    def page(self, template: str, *, status_code: int = 200, **context: Any) -> Response:
        values: dict[str, Any] = {"who": self.principal, "csrf": self.csrf, "path": self.request.url.path}
        response = self.state.renderer.page(
            template, language=self.language, status_code=status_code, context={**values, **context}
        )
        return self.finish(response)

    def redirect(self, to: str) -> Response:
        return self.finish(RedirectResponse(to, status_code=303))

    def start_session(self, session: Session) -> None:
        self.session, self.fresh = session, True

    def finish(self, response: Response) -> Response:
        if self.fresh:
            set_cookie(response, COOKIE, self.state.keys.dump(self.session))
        for name, value in self.cookies.items():
            set_cookie(response, name, value)
        return response


def set_cookie(
    response: Response,
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    samesite: Literal["strict", "lax"] = "strict",
) -> None:
    # __Host- cookies: Secure, Path=/, no Domain, so no other host or path can set or read them.
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite=samesite)


def visitor(request: Request, services: ServicesDep, state: StateDep) -> Visitor:
    now = time.time()
    session = state.keys.load(request.cookies.get(COOKIE), now=now)
    if session is not None and session in state.signed_out:
        session = None
    fresh = session is None
    if session is None:
        session = state.keys.new_session(now=now)
    language = negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    found = Visitor(request, services, state, session, language, fresh)
    if session.token is not None:
        try:
            found.principal = authenticate_token(services, session.token)
        except NotAuthenticated as exc:
            services.audit.record(
                event="auth.failed",
                actor="anonymous",
                details={"method": request.method, "path": request.url.path, "reason": exc.detail},
            )
            found.start_session(state.keys.new_session(now=now))
    return found


VisitorDep = Annotated[Visitor, Depends(visitor)]


async def check_csrf(request: Request, who: VisitorDep) -> Visitor:
    """Every unsafe request carries the session's CSRF token (form field or header) and comes from this
    origin; SameSite=Strict cookies already keep other sites' requests unauthenticated."""
    if request.method in SAFE_METHODS:
        return who
    presented = request.headers.get("x-csrf-token")
    multipart = request.headers.get("content-type", "").lower().startswith("multipart/")
    # An upload streams its own body (never spooled to disk): its token comes in the header only.
    if presented is None and not multipart:
        form = await request.form()
        value = form.get("csrf")
        presented = value if isinstance(value, str) else None
    cross_site = request.headers.get("sec-fetch-site") not in (None, "same-origin", "none")
    if cross_site or not who.state.keys.csrf_ok(who.session, presented):
        who.services.audit.record(
            event="console.csrf_refused",
            actor=who.principal.name if who.principal else "anonymous",
            details={"method": request.method, "path": request.url.path},
        )
        raise Forbidden("the form is stale or came from another site: reload the page and try again")
    return who


CsrfVisitorDep = Annotated[Visitor, Depends(check_csrf)]


def signed_in(*roles: Role) -> Callable[..., Visitor]:
    """A dependency: a signed-in visitor (any role when none is named), with a valid CSRF token on
    unsafe methods. Signed-out visitors are sent to the sign-in page; wrong roles are denied and
    audited exactly as on the API."""
    allowed = frozenset(roles)

    def gate(request: Request, who: CsrfVisitorDep) -> Visitor:
        principal = who.who
        # Whom the access trace names for this page (server/access_trace.py), as deps does for the API.
        request.state.principal = principal
        if allowed and principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise deny(
                who.services,
                request,
                principal,
                f"role {principal.role.value} may not do this; allowed: {names}",
            )
        return who

    return gate


Anyone = Annotated[Visitor, Depends(signed_in())]
AdminV = Annotated[Visitor, Depends(signed_in(Role.ADMIN))]
StewardV = Annotated[Visitor, Depends(signed_in(Role.STEWARD))]
OfficerV = Annotated[Visitor, Depends(signed_in(Role.POLICY_OFFICER))]
OperatorV = Annotated[Visitor, Depends(signed_in(Role.OPERATOR))]
CheckerV = Annotated[Visitor, Depends(signed_in(Role.OUTPUT_CHECKER))]
AuditorV = Annotated[Visitor, Depends(signed_in(Role.AUDITOR))]
CatalogV = Annotated[
    Visitor,
    Depends(signed_in(Role.STEWARD, Role.POLICY_OFFICER, Role.ADMIN, Role.AUDITOR, Role.OPERATOR)),
]
ScopeV = Annotated[Visitor, Depends(signed_in(Role.POLICY_OFFICER, Role.ADMIN, Role.AUDITOR, Role.OPERATOR))]
JobReaderV = Annotated[Visitor, Depends(signed_in(Role.OPERATOR, Role.ADMIN, Role.AUDITOR))]
# As the API's /v1/applications and /v1/alerts (deps.ApplicationReaderDep, deps.AlertReaderDep).
ApplicationReaderV = Annotated[
    Visitor, Depends(signed_in(Role.OPERATOR, Role.POLICY_OFFICER, Role.ADMIN, Role.AUDITOR))
]
AlertReaderV = Annotated[Visitor, Depends(signed_in(Role.AUDITOR, Role.ADMIN))]
# Admins, and domain administrators for their own domain's stewards and operators (server/admin_scope.py).
ManagerV = Annotated[Visitor, Depends(signed_in(Role.ADMIN, Role.DOMAIN_ADMIN))]


def language_of(request: Request) -> Language:
    return negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def known_language(code: str) -> str | None:
    return code if code in LANGUAGES else None


def home_of(role: Role) -> str:
    """Each role's first page after sign-in."""
    pages: Mapping[Role, str] = {
        Role.OPERATOR: "/jobs",
        Role.OUTPUT_CHECKER: "/reviews",
        Role.POLICY_OFFICER: "/scopes",
        Role.STEWARD: "/datasets",
        Role.AUDITOR: "/audit",
        Role.ADMIN: "/admin",
        Role.DOMAIN_ADMIN: "/admin",
    }
    return PREFIX + pages.get(role, "/home")
