"""Liveness and the caller's identity."""

from __future__ import annotations

from fastapi import APIRouter

from sandbox_api.errors import NotAuthenticated
from sandbox_api.schemas import Health, PrincipalOut
from sandbox_api.server.app_info import app_version
from sandbox_api.server.deps import PrincipalDep
from sandbox_api.server.problems import raises

router = APIRouter(prefix="/v1", tags=["system"])


@router.get("/health", summary="Liveness (no token needed)", responses=raises())
def health() -> Health:
    return Health(version=app_version())


@router.get("/whoami", summary="The authenticated caller", responses=raises(NotAuthenticated))
def whoami(who: PrincipalDep) -> PrincipalOut:
    return PrincipalOut(name=who.name, role=who.role, domain=who.domain, groups=list(who.groups))
