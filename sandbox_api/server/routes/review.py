"""Output review (the airlock): output checkers list, inspect, release or deny withheld jobs."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends

from sandbox_api.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from sandbox_api.roles import Role
from sandbox_api.schemas import ReviewDecision, ReviewList, ReviewOut
from sandbox_api.server.auth import Principal
from sandbox_api.server.deps import ServicesDep, require
from sandbox_api.server.problems import raises
from sandbox_api.server.services.review import ReviewService, ReviewView

router = APIRouter(prefix="/v1/reviews", tags=["output review"])

CheckerDep = Annotated[Principal, Depends(require(Role.OUTPUT_CHECKER))]


def reviews(services: ServicesDep) -> ReviewService:
    return ReviewService(services.jobs)


ReviewsDep = Annotated[ReviewService, Depends(reviews)]


def review_out(view: ReviewView) -> ReviewOut:
    return ReviewOut.model_validate(asdict(view))


@router.get(
    "",
    summary="Withheld jobs waiting for an output checker (not your own), oldest first",
    responses=raises(NotAuthenticated, Forbidden),
)
def list_reviews(who: CheckerDep, service: ReviewsDep) -> ReviewList:
    return ReviewList(reviews=[review_out(v) for v in service.list_pending(who)])


@router.get(
    "/{job_id}",
    summary="One withheld job: its output and the automatic disclosure report",
    responses=raises(NotAuthenticated, Forbidden, NotFound),
)
def get_review(job_id: str, who: CheckerDep, service: ReviewsDep) -> ReviewOut:
    return review_out(service.get(who, job_id))


@router.post(
    "/{job_id}/release",
    summary="Release a withheld output (released once the scope's number of checkers agree)",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict, InvalidInput),
)
def release_output(job_id: str, body: ReviewDecision, who: CheckerDep, service: ReviewsDep) -> ReviewOut:
    return review_out(service.decide(who, job_id, decision="release", reason=body.reason))


@router.post(
    "/{job_id}/deny",
    summary="Deny a withheld output, with a reason the operator can act on",
    responses=raises(NotAuthenticated, Forbidden, NotFound, Conflict, InvalidInput),
)
def deny_output(job_id: str, body: ReviewDecision, who: CheckerDep, service: ReviewsDep) -> ReviewOut:
    return review_out(service.decide(who, job_id, decision="deny", reason=body.reason))
