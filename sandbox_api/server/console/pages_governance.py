"""Access applications and alerts on unusual use, as the API offers them (services/applications.py,
services/alerts.py): operators apply and follow the outcome, policy officers draft a scope from an
application or refuse it, auditors read alerts with their evidence and acknowledge them."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form
from starlette.responses import Response

from sandbox_api.errors import InvalidInput
from sandbox_api.server.console.web import (
    PREFIX,
    AlertReaderV,
    ApplicationReaderV,
    AuditorV,
    OfficerV,
    OperatorV,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)

TextField = Annotated[str, Form(max_length=2000)]
DocumentField = Annotated[str, Form(max_length=200_000)]


def parse_columns(text: str) -> dict[str, list[str]]:
    """``domain/dataset: col, col`` per line, as the application form takes them.

    >>> parse_columns("health-bureau/visits: district, cost\\n\\ncivil-affairs/citizens: district")
    {'health-bureau/visits': ['district', 'cost'], 'civil-affairs/citizens': ['district']}
    """
    wanted: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        dataset, colon, names = line.partition(":")
        if not colon or not dataset.strip():
            raise InvalidInput(f"write each line as 'domain/dataset: column, column' (got {line.strip()!r})")
        wanted[dataset.strip()] = [n.strip() for n in names.split(",") if n.strip()]
    return wanted


@router.get("/applications")
def applications_page(who: ApplicationReaderV) -> Response:
    return who.page("applications.html", applications=who.services.applications.list_for(who.who))


@router.post("/applications")
def apply(
    who: OperatorV,
    datasets: TextField,
    purpose: TextField,
    duration_days: Annotated[int, Form(ge=1, le=3660)],
    columns: TextField = "",
) -> Response:
    wanted = parse_columns(columns)
    names = sorted({d.strip() for d in datasets.replace("\n", ",").split(",") if d.strip()} | set(wanted))
    who.services.applications.submit(
        actor=who.who, datasets=names, purpose=purpose, columns=wanted, duration_days=duration_days
    )
    return who.redirect(PREFIX + "/applications")


@router.post("/applications/{application_id}/draft")
def draft_application(application_id: str, who: OfficerV, document: DocumentField) -> Response:
    who.services.applications.draft(
        actor=who.who, application_id=application_id, document=document, fmt="yaml"
    )
    return who.redirect(PREFIX + "/applications")


@router.post("/applications/{application_id}/refuse")
def refuse_application(application_id: str, who: OfficerV, reason: TextField) -> Response:
    who.services.applications.refuse(actor=who.who, application_id=application_id, reason=reason)
    return who.redirect(PREFIX + "/applications")


@router.get("/alerts")
def alerts_page(who: AlertReaderV) -> Response:
    alerts = who.services.alerts.list_alerts()
    evidence = {a.id: json.dumps(a.evidence, indent=1, ensure_ascii=False, sort_keys=True) for a in alerts}
    return who.page("alerts.html", alerts=alerts, evidence=evidence)


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge_alert(alert_id: str, who: AuditorV, note: TextField) -> Response:
    who.services.alerts.acknowledge(actor=who.who.name, alert_id=alert_id, note=note)
    return who.redirect(PREFIX + "/alerts")
