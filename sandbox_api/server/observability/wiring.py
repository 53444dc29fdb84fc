"""The one call the app factory makes to install observability on a gateway."""

from __future__ import annotations

from fastapi import FastAPI

from sandbox_api.server.deps import Services
from sandbox_api.server.observability import health
from sandbox_api.server.observability.http import Observe


def install_observability(app: FastAPI, services: Services) -> None:
    """The probe and metrics routes, and the request middleware (added last: it runs outermost)."""
    app.include_router(health.router)
    app.add_middleware(
        Observe,
        header=services.settings.request_id_header,
        tracer=services.observability.tracing.tracer,
        metrics=services.observability.metrics,
    )
