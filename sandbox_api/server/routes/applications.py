"""Access applications: an operator applies, a policy officer drafts a scope from it or refuses it.

Approval is the drafted scope version's (``/v1/scopes/{name}/versions/{id}/approve``): four eyes.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, status

from policies.errors import ScopeInvalid, UnknownReference
from sandbox_api.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    ScopeInconsistent,
)
from sandbox_api.schemas_governance import (
    ApplicationCreate,
    ApplicationDraft,
    ApplicationOut,
    ApplicationRefusal,
)
from sandbox_api.server.deps import ApplicationReaderDep, OfficerDep, OperatorDep, ServicesDep
from sandbox_api.server.problems import raises
from sandbox_api.server.services.applications import ApplicationView

router = APIRouter(prefix="/v1/applications", tags=["applications"])


def application_out(view: ApplicationView) -> ApplicationOut:
    return ApplicationOut.model_validate(asdict(view))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Apply for access: datasets, purpose, columns wanted, duration",
    responses=raises(NotAuthenticated, Forbidden, NotFound, InvalidInput),
)
def submit_application(body: ApplicationCreate, who: OperatorDep, services: ServicesDep) -> ApplicationOut:
    view = services.applications.submit(
        actor=who,
        datasets=body.datasets,
        purpose=body.purpose,
        columns=body.columns,
        duration_days=body.duration_days,
    )
    return application_out(view)


@router.get(
    "",
    summary="Applications (operators: their own) with their outcome",
    responses=raises(NotAuthenticated, Forbidden),
)
def list_applications(who: ApplicationReaderDep, services: ServicesDep) -> list[ApplicationOut]:
    return [application_out(v) for v in services.applications.list_for(who)]


@router.get(
    "/{application_id}",
    summary="One application and its outcome (another operator's answers 404)",
    responses=raises(NotAuthenticated, Forbidden, NotFound),
)
def get_application(application_id: str, who: ApplicationReaderDep, services: ServicesDep) -> ApplicationOut:
    return application_out(services.applications.get(who, application_id))


@router.post(
    "/{application_id}/draft",
    summary="Draft a scope from an application (pending until another officer approves it)",
    responses=raises(
        NotAuthenticated,
        Forbidden,
        NotFound,
        Conflict,
        InvalidInput,
        ScopeInvalid,
        ScopeInconsistent,
        UnknownReference,
    ),
)
def draft_application(
    application_id: str, body: ApplicationDraft, who: OfficerDep, services: ServicesDep
) -> ApplicationOut:
    view = services.applications.draft(
        actor=who, application_id=application_id, document=body.document, fmt=body.format
    )
    return application_out(view)


@router.post(
    "/{application_id}/refuse",
    summary="Refuse an application, with a reason the applicant can act on",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict, InvalidInput),
)
def refuse_application(
    application_id: str, body: ApplicationRefusal, who: OfficerDep, services: ServicesDep
) -> ApplicationOut:
    view = services.applications.refuse(actor=who, application_id=application_id, reason=body.reason)
    return application_out(view)
