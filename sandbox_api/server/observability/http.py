"""The one ASGI middleware of observability: per request, its id, its span, its count and its log line.

Outermost, so that even a request refused before routing (413, 415) carries an id, is counted and is
logged. The route label is the matched route's template, never the path: ids stay out of metrics.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox_api.server.observability.logs import REQUEST_ID, request_id_from
from sandbox_api.server.observability.metrics import Metrics

ACCESS_LOG: Final = "sandbox_api.access"
UNMATCHED: Final = "unmatched"
_PROPAGATOR = TraceContextTextMapPropagator()


class Observe:
    """Request id (taken or made, echoed), server span (continuing a caller's ``traceparent``), request
    counter and one access log line."""

    def __init__(self, app: ASGIApp, *, header: str, tracer: trace.Tracer, metrics: Metrics | None) -> None:
        self.app = app
        self.header = header
        self.tracer = tracer
        self.metrics = metrics
        self.log = logging.getLogger(ACCESS_LOG)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = request_id_from(headers.get(self.header))
        method = str(scope["method"])
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[self.header] = request_id
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            with self.tracer.start_as_current_span(
                method,
                context=_PROPAGATOR.extract(dict(headers.items())),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "sandbox.request_id": request_id},
            ) as span:
                try:
                    await self.app(scope, receive, send_with_id)
                finally:
                    route = getattr(scope.get("route"), "path", None) or UNMATCHED
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                    if self.metrics is not None:
                        self.metrics.requests.labels(method=method, route=route, status=str(status)).inc()
                    self.log.info(
                        "%s %s %d",
                        method,
                        route,
                        status,
                        extra={
                            "method": method,
                            "route": route,
                            "status": status,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                        },
                    )
        finally:
            REQUEST_ID.reset(token)
