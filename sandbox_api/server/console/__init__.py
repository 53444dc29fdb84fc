"""The web console: server-rendered pages for every role, served by the gateway itself under /console.

Same process, same authentication, same services as the API: each page calls the service the matching
API route calls, with the signed-in principal, so roles, scopes, four eyes, visibility and disclosure hold
identically. See docs/console.md.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from sandbox_api.server.console import (
    pages_admin,
    pages_audit,
    pages_auth,
    pages_data,
    pages_governance,
    pages_jobs,
    pages_open_data,
    pages_review,
    pages_scopes,
    pages_sso,
)
from sandbox_api.server.console.api_docs import install_api_docs
from sandbox_api.server.console.chain_watch import ChainWatch
from sandbox_api.server.console.i18n import load_translations
from sandbox_api.server.console.rendering import Renderer, new_environment
from sandbox_api.server.console.session import SessionKeys, SignedOut
from sandbox_api.server.console.web import PREFIX, ConsoleState, language_of
from sandbox_api.server.deps import Services
from sandbox_api.server.sso_redirect import CodeFlow

STATIC = Path(__file__).parent / "static"
ROUTERS = (
    pages_auth.router,
    pages_sso.router,
    pages_jobs.router,
    pages_review.router,
    pages_scopes.router,
    pages_data.router,
    pages_audit.router,
    pages_admin.router,
    pages_open_data.router,
    pages_governance.router,
)

Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def install_console(app: FastAPI) -> None:
    """Mount the console on ``app`` (after the problem handlers: it wraps them for its own paths), and
    serve ``/docs`` and ``/redoc`` from the vendored assets."""
    services: Services = app.state.services
    state = ConsoleState(
        renderer=Renderer(env=new_environment(), translations=load_translations()),
        keys=SessionKeys(
            seal_key=services.keys.secret("console-session"),
            csrf_key=services.keys.secret("console-csrf"),
        ),
        signed_out=SignedOut(services.db),
        chain_watch=ChainWatch(),
        code_flow=CodeFlow.from_settings(services.settings) if services.sso is not None else None,
    )
    app.state.console = state
    for router in ROUTERS:
        app.include_router(router)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="console-static")
    install_api_docs(app)
    for family, original in list(app.exception_handlers.items()):
        app.add_exception_handler(family, _as_page(original, state))


def _as_page(original: Handler, state: ConsoleState) -> Handler:
    """The API's handler, answered as a page on console paths: the same status, detail and findings
    (problems.py stays the one place that maps errors to statuses)."""

    async def handler(request: Request, exc: Any) -> Response:
        answer = original(request, exc)
        if inspect.isawaitable(answer):
            answer = await answer
        if not request.url.path.startswith(PREFIX + "/") and request.url.path != PREFIX:
            return answer
        if answer.status_code == 401 and request.method in ("GET", "HEAD"):
            return RedirectResponse(PREFIX + "/sign-in", status_code=303)
        try:
            problem = json.loads(bytes(answer.body))
        except (ValueError, AttributeError):
            problem = {"detail": "", "findings": []}
        return state.renderer.page(
            "error.html",
            language=language_of(request),
            status_code=answer.status_code,
            context={
                "who": None,
                "csrf": "",
                "path": request.url.path,
                "status": answer.status_code,
                "problem": problem,
            },
        )

    return handler
