"""Alerts on unusual use: auditors (and admins, who lift suspensions) read them; auditors acknowledge."""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

from fastapi import APIRouter

from sandbox_api.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from sandbox_api.schemas_governance import AlertAcknowledge, AlertOut
from sandbox_api.server.deps import AlertReaderDep, AuditorDep, ServicesDep
from sandbox_api.server.problems import raises
from sandbox_api.server.services.alerts import AlertView

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


def alert_out(view: AlertView) -> AlertOut:
    return AlertOut.model_validate(asdict(view))


@router.get(
    "",
    summary="Alerts on unusual use, newest first, each with its evidence",
    responses=raises(NotAuthenticated, Forbidden),
)
def list_alerts(
    who: AlertReaderDep,
    services: ServicesDep,
    state: Literal["open", "acknowledged"] | None = None,
    operator: str | None = None,
) -> list[AlertOut]:
    return [alert_out(v) for v in services.alerts.list_alerts(state=state, operator=operator)]


@router.post(
    "/{alert_id}/acknowledge",
    summary="Acknowledge an alert with a note (a suspension is lifted by an admin enabling the operator)",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict, InvalidInput),
)
def acknowledge_alert(
    alert_id: str, body: AlertAcknowledge, who: AuditorDep, services: ServicesDep
) -> AlertOut:
    return alert_out(services.alerts.acknowledge(actor=who.name, alert_id=alert_id, note=body.note))
