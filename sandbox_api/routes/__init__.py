"""HTTP routes, one module per resource."""

from __future__ import annotations

from fastapi import APIRouter

from sandbox_api.routes import admin, audit, datasets, jobs, scopes, system

ROUTERS: tuple[APIRouter, ...] = (
    system.router,
    admin.router,
    datasets.router,
    scopes.router,
    jobs.router,
    audit.router,
)
