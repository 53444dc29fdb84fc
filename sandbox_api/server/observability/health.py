"""Liveness, readiness and the metrics route: outside ``/v1``, since probes and scrapers call them, not
people, and their paths are what orchestrators and Prometheus expect by default.

``/livez`` says the process answers (nothing else: a liveness probe that checks the database would have
an orchestrator restart every gateway during a database outage). ``/readyz`` says this gateway can do
its work now: the metadata database answers a query on the job table, the job runner's threads are up,
and the executor reports itself ready; otherwise 503 with each failing check as a finding.
"""

from __future__ import annotations

from typing import Annotated, Protocol, runtime_checkable

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select

from sandbox_api.errors import Forbidden, NotAuthenticated, NotFound, ServiceUnavailable
from sandbox_api.roles import Role
from sandbox_api.schemas import Health, Readiness
from sandbox_api.server.app_info import app_version
from sandbox_api.server.auth import Principal
from sandbox_api.server.deps import Services, ServicesDep, require
from sandbox_api.server.problems import raises
from sandbox_api.server.store.models import JobRow

router = APIRouter(tags=["observability"])

MetricsReaderDep = Annotated[Principal, Depends(require(Role.ADMIN, Role.AUDITOR))]


@runtime_checkable
class ReportsReadiness(Protocol):
    """An executor that can say whether it can take jobs now (None) or why not."""

    def readiness(self) -> str | None: ...


def database_check(services: Services) -> str | None:
    try:
        with services.db.read() as session:
            session.execute(select(JobRow.id).limit(1)).all()
    except Exception as exc:  # whatever the driver raises, the answer is "not ready, and why"
        return f"the metadata database does not answer ({type(exc).__name__})"
    return None


def runner_check(services: Services) -> str | None:
    return None if services.runner.running else "the job runner is not running"


def executor_check(services: Services) -> str | None:
    executor = services.runner.executor
    return executor.readiness() if isinstance(executor, ReportsReadiness) else None


CHECKS = {"database": database_check, "runner": runner_check, "executor": executor_check}


def failing_checks(services: Services) -> dict[str, str]:
    """Each failing check's name and reason; empty when the gateway is ready."""
    reasons = {name: check(services) for name, check in CHECKS.items()}
    return {name: reason for name, reason in reasons.items() if reason is not None}


@router.get(
    "/livez", summary="Liveness: the process answers (no token; checks nothing else)", responses=raises()
)
def livez() -> Health:
    return Health(version=app_version())


@router.get(
    "/readyz",
    summary="Readiness: database, job runner and executor ready (no token); 503 with the reasons if not",
    responses=raises(ServiceUnavailable),
)
def readyz(services: ServicesDep) -> Readiness:
    failing = failing_checks(services)
    if failing:
        raise ServiceUnavailable(
            "not ready: " + "; ".join(f"{name}: {reason}" for name, reason in failing.items()),
            findings=[{"rule": name, "message": reason} for name, reason in failing.items()],
        )
    return Readiness(checks={name: "ok" for name in CHECKS})


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin or auditor token)",
    response_class=Response,
    responses={
        **raises(NotAuthenticated, Forbidden, NotFound),
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "the text exposition format"},
    },
)
def metrics(who: MetricsReaderDep, services: ServicesDep) -> Response:
    del who  # the role gate is the point
    observed = services.observability.metrics
    if observed is None:
        raise NotFound("metrics are off on this gateway (setting metrics_enabled)")
    return Response(generate_latest(observed.registry), media_type=CONTENT_TYPE_LATEST)
