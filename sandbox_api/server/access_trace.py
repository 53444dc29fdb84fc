"""The access trace: every authenticated read under /v1 becomes a `read.*` audit event.

Reads change nothing, yet who looked at what is half of "a full trace during, traceability after"
(docs/governance.md). A middleware sees every request after it is answered, so one place covers every
route, refusals and 404s included: a request for another operator's job id answers 404 exactly like a
missing one, and the trace still says who asked for which id. The event names come from ``READ_EVENTS``;
a new GET route needs an entry (or a reason in ``UNTRACED``), or tests/sandbox_api/server/test_access_trace.py
fails.

Events are queued, not written in the request (services/read_buffer.py): the answer does not wait for a
write transaction. What an event holds is what was asked (the route's path ids, the query filters it
declares, the answer's status), never a value from the data or the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox_api.clock import Clock, iso
from sandbox_api.server.deps import Services
from sandbox_api.server.observability.logs import REQUEST_ID
from sandbox_api.server.services.audit import AuditLog

# (method, route path) -> the event every request to it leaves. Names are stable: auditors filter on them
# (`?event=read.` for all of them).
READ_EVENTS: Mapping[tuple[str, str], str] = {
    ("GET", "/v1/whoami"): "read.whoami",
    ("GET", "/v1/domains"): "read.domains.list",
    ("GET", "/v1/principals"): "read.principals.list",
    ("GET", "/v1/principals/{name}/tokens"): "read.principals.tokens",
    ("GET", "/v1/datasets"): "read.datasets.list",
    ("GET", "/v1/datasets/{domain}/{name}"): "read.datasets.get",
    ("GET", "/v1/datasets/{domain}/{name}/versions/{version}"): "read.datasets.version",
    ("GET", "/v1/scopes"): "read.scopes.list",
    ("GET", "/v1/scopes/{name}"): "read.scopes.get",
    ("GET", "/v1/applications"): "read.applications.list",
    ("GET", "/v1/applications/{application_id}"): "read.applications.get",
    ("GET", "/v1/alerts"): "read.alerts.list",
    ("POST", "/v1/jobs/check"): "read.jobs.check",
    ("GET", "/v1/jobs"): "read.jobs.list",
    ("GET", "/v1/jobs/{job_id}"): "read.jobs.get",
    ("GET", "/v1/jobs/{job_id}/result"): "read.jobs.result",
    ("GET", "/v1/jobs/{job_id}/receipt"): "read.jobs.receipt",
    ("GET", "/v1/reviews"): "read.reviews.list",
    ("GET", "/v1/reviews/{job_id}"): "read.reviews.get",
    ("GET", "/v1/audit/events"): "read.audit.events",
    ("GET", "/v1/audit/export"): "read.audit.export",
    ("GET", "/v1/audit/head"): "read.audit.head",
    ("GET", "/v1/audit/bundle"): "read.audit.bundle",
    ("GET", "/v1/audit/checkpoints"): "read.audit.checkpoints",
    ("GET", "/v1/witnesses"): "read.witnesses",
    ("GET", "/v1/publications"): "read.publications.list",
    ("GET", "/v1/publications/{publication_id}"): "read.publications.get",
}
# The web console's pages read through the same services as the API: each read is traced the same way,
# under `read.console.*` (the dry run as the API's `read.jobs.check`). Sign-in pages, the public
# open-data pages and static files read nothing protected. A new console GET page needs an entry here or
# a reason in CONSOLE_UNTRACED (tests/sandbox_api/server/test_access_trace.py).
CONSOLE_READ_EVENTS: Mapping[tuple[str, str], str] = {
    ("GET", "/console/home"): "read.console.home",
    ("GET", "/console/jobs"): "read.console.jobs.list",
    ("POST", "/console/jobs/check"): "read.jobs.check",
    ("GET", "/console/jobs/{job_id}"): "read.console.jobs.get",
    ("GET", "/console/jobs/{job_id}/result.csv"): "read.console.jobs.result",
    ("GET", "/console/jobs/{job_id}/result.parquet"): "read.console.jobs.result",
    ("GET", "/console/reviews"): "read.console.reviews.list",
    ("GET", "/console/reviews/{job_id}"): "read.console.reviews.get",
    ("GET", "/console/scopes"): "read.console.scopes.list",
    ("GET", "/console/datasets"): "read.console.datasets.list",
    ("GET", "/console/audit"): "read.console.audit.events",
    ("GET", "/console/audit/export"): "read.console.audit.export",
    ("GET", "/console/admin"): "read.console.admin",
    ("GET", "/console/applications"): "read.console.applications.list",
    ("GET", "/console/alerts"): "read.console.alerts.list",
}
CONSOLE_UNTRACED: Mapping[tuple[str, str], str] = {
    ("GET", "/console"): "a redirect to the visitor's home or to sign-in: reads nothing",
    ("GET", "/console/sign-in"): "the sign-in form: nothing protected",
    ("GET", "/console/sign-in/sso"): "starts single sign-on: nothing protected",
    ("GET", "/console/sign-in/sso/callback"): "ends single sign-on; audited as console.signed_in",
    ("GET", "/console/open-data"): "the public open-data catalog, no sign-in: public by decision",
    ("GET", "/console/open-data/{publication_id}"): "a published table, no sign-in: public by decision",
}
OPEN_DATA = "the public open-data catalog, no token: public by a policy officer's decision"
# GET routes under /v1 that leave no read event, and why: they need no token, so there is nobody to name
# and nothing protected to read, and probes would flood the chain.
UNTRACED: Mapping[tuple[str, str], str] = {
    ("GET", "/v1/health"): "liveness, no token: nothing protected is read",
    ("GET", "/v1/keys/signing"): "public verification keys, no token: whoever holds a receipt may read them",
    (
        "GET",
        "/v1/open-data",
    ): "the public open-data catalog, no token: published by a policy officer's decision",
    (
        "GET",
        "/v1/open-data/{publication_id}",
    ): "a published table, no token: public by a policy officer's decision",
    (
        "GET",
        "/v1/open-data/{publication_id}/data.csv",
    ): "a published table as CSV, no token: public by decision",
}
# What a request's state may carry for its trace: the principal (deps.current_principal) and extra
# details a route adds (the dry run's scope and hashes).
PRINCIPAL = "principal"
TRACE_DETAILS = "trace_details"
# Longest query value kept: filters are short; a longer one is cut so a request cannot bloat the chain.
MAX_VALUE = 200


def asked(scope: Scope, route: APIRoute) -> dict[str, object]:
    """The ids in the path and the filters the route declares (undeclared query keys are noise)."""
    declared = {param.alias for param in route.dependant.query_params}
    query: dict[str, str] = {}
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        if name in declared:
            query[name] = value[:MAX_VALUE]
    path = {str(k): str(v)[:MAX_VALUE] for k, v in dict(scope.get("path_params", {})).items()}
    return {"path": path, "query": query}


class AccessTrace:
    """ASGI middleware: after each answer, queue the read event its route names (if any)."""

    def __init__(self, app: ASGIApp, *, audit: AuditLog, clock: Clock) -> None:
        self.app = app
        self.audit = audit
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        asked_at = iso(self.clock.now())

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            self._trace(scope, status=status, asked_at=asked_at)

    def _trace(self, scope: Scope, *, status: int, asked_at: str) -> None:
        route = scope.get("route")
        if not isinstance(route, APIRoute):
            return
        key = (str(scope["method"]), route.path)
        event = READ_EVENTS.get(key) or CONSOLE_READ_EVENTS.get(key)
        if event is None:
            return
        state: Mapping[str, Any] = scope.get("state") or {}
        principal = state.get(PRINCIPAL)
        details: dict[str, object] = {
            **asked(scope, route),
            "status": status,
            "asked_at": asked_at,
            "request_id": REQUEST_ID.get(),
        }
        extra = state.get(TRACE_DETAILS)
        if isinstance(extra, Mapping):
            details.update(extra)
        actor = getattr(principal, "name", None) or "anonymous"
        self.audit.trace(event=event, actor=actor, details=details)


def install_access_trace(app: FastAPI, services: Services) -> None:
    """The middleware, and a last flush when the app shuts down (after the job runner has stopped)."""
    if not services.settings.audit_read_trace:
        return
    app.add_middleware(AccessTrace, audit=services.audit, clock=services.clock)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(instance: Any) -> AsyncIterator[Any]:
        try:
            async with inner(instance) as state:
                yield state
        finally:
            # The database was disposed above; a flush opens one connection, so dispose again after.
            services.audit.flush_reads()
            services.db.dispose()

    app.router.lifespan_context = lifespan
