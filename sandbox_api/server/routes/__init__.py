"""HTTP routes, one module per resource."""

from __future__ import annotations

from fastapi import APIRouter

from sandbox_api.server.routes import (
    admin,
    alerts,
    applications,
    audit_log,
    datasets,
    evidence,
    jobs,
    keys,
    open_data,
    review,
    scopes,
    system,
    witnesses,
)

ROUTERS: tuple[APIRouter, ...] = (
    system.router,
    admin.router,
    datasets.router,
    scopes.router,
    applications.router,
    jobs.router,
    review.router,
    audit_log.router,
    evidence.router,
    keys.router,
    open_data.router,
    open_data.public,
    alerts.router,
    witnesses.router,
)
