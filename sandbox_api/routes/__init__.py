"""HTTP routes, one module per resource."""

from __future__ import annotations

from fastapi import APIRouter

from sandbox_api.routes import admin, audit, auditing, datasets, jobs, keys, review, scopes, system

ROUTERS: tuple[APIRouter, ...] = (
    system.router,
    admin.router,
    datasets.router,
    scopes.router,
    jobs.router,
    review.router,
    audit.router,
    auditing.router,
    keys.router,
)
