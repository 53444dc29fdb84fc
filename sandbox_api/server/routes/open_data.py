"""Open data: proposals and their review (``/v1/publications``), and the public catalog (``/v1/open-data``).

The catalog routes need no token: a published table is public by decision of a policy officer
(services/open_data.py). Everything else is the workflow that leads there.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from sandbox_api.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from sandbox_api.roles import Role
from sandbox_api.schemas import (
    OpenDataEntry,
    OpenDataList,
    OpenDataOut,
    PublicationCreate,
    PublicationDecision,
    PublicationList,
    PublicationOut,
)
from sandbox_api.server.auth import Principal
from sandbox_api.server.deps import OfficerDep, OperatorDep, ServicesDep, require
from sandbox_api.server.problems import raises
from sandbox_api.server.services.open_data import OpenDataService, PublicationView, as_csv

router = APIRouter(prefix="/v1/publications", tags=["open data"])
public = APIRouter(prefix="/v1/open-data", tags=["open data"])

WithdrawerDep = Annotated[Principal, Depends(require(Role.POLICY_OFFICER, Role.ADMIN))]
ReaderDep = Annotated[
    Principal, Depends(require(Role.OPERATOR, Role.POLICY_OFFICER, Role.AUDITOR, Role.ADMIN))
]


def open_data(services: ServicesDep) -> OpenDataService:
    return OpenDataService(
        db=services.db,
        audit=services.audit,
        clock=services.clock,
        results_key=services.jobs.results_key,
        receipts=services.receipts,
    )


OpenDataDep = Annotated[OpenDataService, Depends(open_data)]


def publication_out(view: PublicationView) -> PublicationOut:
    return PublicationOut.model_validate(asdict(view))


@router.post(
    "",
    status_code=201,
    summary="Propose one of your released results for the public open-data catalog",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict, InvalidInput),
)
def propose(body: PublicationCreate, who: OperatorDep, service: OpenDataDep) -> PublicationOut:
    return publication_out(
        service.propose(who, job_id=body.job_id, title=body.title, description=body.description)
    )


@router.get(
    "",
    summary="Proposals and their decisions (operators: their own), newest first",
    responses=raises(NotAuthenticated, Forbidden),
)
def list_publications(
    who: ReaderDep,
    service: OpenDataDep,
    state: Annotated[Literal["proposed", "published", "refused", "withdrawn"] | None, Query()] = None,
) -> PublicationList:
    return PublicationList(publications=[publication_out(v) for v in service.proposals(who, state=state)])


@router.get(
    "/{publication_id}",
    summary="One proposal and where it stands",
    responses=raises(NotAuthenticated, Forbidden, NotFound),
)
def get_publication(publication_id: str, who: ReaderDep, service: OpenDataDep) -> PublicationOut:
    return publication_out(service.get(who, publication_id))


@router.post(
    "/{publication_id}/publish",
    summary="Publish a proposal (a policy officer, never the proposer)",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict, InvalidInput),
)
def publish(
    publication_id: str, body: PublicationDecision, who: OfficerDep, service: OpenDataDep
) -> PublicationOut:
    return publication_out(service.publish(who, publication_id, reason=body.reason))


@router.post(
    "/{publication_id}/refuse",
    summary="Refuse a proposal, with a reason the proposer can act on",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict, InvalidInput),
)
def refuse(
    publication_id: str, body: PublicationDecision, who: OfficerDep, service: OpenDataDep
) -> PublicationOut:
    return publication_out(service.refuse(who, publication_id, reason=body.reason))


@router.post(
    "/{publication_id}/withdraw",
    summary="Withdraw a published table from the public catalog, with a reason",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict, InvalidInput),
)
def withdraw(
    publication_id: str, body: PublicationDecision, who: WithdrawerDep, service: OpenDataDep
) -> PublicationOut:
    return publication_out(service.withdraw(who, publication_id, reason=body.reason))


@public.get("", summary="The public catalog: every published table (no token needed)", responses=raises())
def catalog(service: OpenDataDep) -> OpenDataList:
    return OpenDataList(entries=[OpenDataEntry.model_validate(asdict(e)) for e in service.catalog()])


@public.get(
    "/{publication_id}",
    summary="One published table with its signed receipt (no token needed)",
    responses=raises(NotFound),
)
def published(publication_id: str, service: OpenDataDep) -> OpenDataOut:
    return OpenDataOut.model_validate(asdict(service.published(publication_id)))


@public.get(
    "/{publication_id}/data.csv",
    summary="One published table as CSV (no token needed)",
    response_class=Response,
    responses={**raises(NotFound), 200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def published_csv(publication_id: str, service: OpenDataDep) -> Response:
    table = service.published(publication_id)
    return Response(
        as_csv(table.columns, table.rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="open-data-{publication_id}.csv"'},
    )
