"""The output checker's desk: the review queue, the disclosure report beside the output, release or deny
with a reason. The service refuses a checker's own jobs (and audits the attempt), as on the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from starlette.responses import Response

from sandbox_api.server.console.web import PREFIX, CheckerV
from sandbox_api.server.services.review import ReviewService

router = APIRouter(prefix=PREFIX + "/reviews", include_in_schema=False)

ReasonField = Annotated[str, Form(max_length=2000)]


@router.get("")
def reviews_page(who: CheckerV) -> Response:
    return who.page("reviews.html", reviews=ReviewService(who.services.jobs).list_pending(who.who))


@router.get("/{job_id}")
def review_page(job_id: str, who: CheckerV) -> Response:
    return who.page("review.html", review=ReviewService(who.services.jobs).get(who.who, job_id))


@router.post("/{job_id}/release")
def release_output(job_id: str, who: CheckerV, reason: ReasonField = "") -> Response:
    ReviewService(who.services.jobs).decide(who.who, job_id, decision="release", reason=reason)
    return who.redirect(f"{PREFIX}/reviews/{job_id}")


@router.post("/{job_id}/deny")
def deny_output(job_id: str, who: CheckerV, reason: ReasonField = "") -> Response:
    ReviewService(who.services.jobs).decide(who.who, job_id, decision="deny", reason=reason)
    return who.redirect(f"{PREFIX}/reviews/{job_id}")
