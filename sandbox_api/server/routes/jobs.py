"""Jobs: dry run, submit, list, read, result, cancel."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from crypto.hashing import sha256_hex
from policies.errors import PolicyViolation, UnknownReference
from sandbox_api.errors import (
    Forbidden,
    InvalidInput,
    JobNotReady,
    JobRejected,
    JobStateConflict,
    NotAuthenticated,
    NotFound,
    QueueFull,
    QuotaExceeded,
    ScopeExpired,
    ScopeInconsistent,
    ScopeNotActive,
)
from sandbox_api.schemas import (
    JOB_WAIT_MAX_S,
    CancelOut,
    CheckOut,
    DpBudgetOut,
    FindingOut,
    JobAccepted,
    JobList,
    JobOut,
    JobRequest,
    ResultOut,
)
from sandbox_api.server.access_trace import TRACE_DETAILS
from sandbox_api.server.deps import JobCancellerDep, JobReaderDep, OperatorDep, ServicesDep
from sandbox_api.server.openapi_doc import link
from sandbox_api.server.problems import raises
from sandbox_api.server.services.job_kinds import finding_dicts
from sandbox_api.server.services.jobs import JobView

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# What a submitted job's id leads to (OpenAPI links).
JOB_ID = "$response.body#/job_id"
JOB_LINKS = (("GetJob", "get_job"), ("GetResult", "get_result"), ("CancelJob", "cancel_job"))


def job_out(view: JobView) -> JobOut:
    return JobOut.model_validate(asdict(view))


@router.post(
    "/check",
    summary="Dry run: findings and the rewritten SQL, nothing runs or is stored",
    responses=raises(
        NotAuthenticated,
        Forbidden,
        NotFound,
        InvalidInput,
        ScopeNotActive,
        ScopeExpired,
        ScopeInconsistent,
        PolicyViolation,
        UnknownReference,
    ),
)
def check_job(body: JobRequest, request: Request, who: OperatorDep, services: ServicesDep) -> CheckOut:
    # The access trace's `read.jobs.check` names what was tried: hashes of the text, never the text.
    traced: dict[str, object] = {"scope": body.scope, "kind": body.kind.value, "mode": body.mode.value}
    for name, text in (("sql_sha256", body.sql), ("code_sha256", body.code)):
        if text is not None:
            traced[name] = sha256_hex(text.encode("utf-8"))
    setattr(request.state, TRACE_DETAILS, traced)
    report = services.jobs.dry_run(
        who, scope=body.scope, kind=body.kind, mode=body.mode, sql=body.sql, code=body.code
    )
    traced["allowed"] = report.allowed
    traced["rules"] = sorted({finding.rule for finding in report.findings})
    return CheckOut(
        allowed=report.allowed,
        findings=[FindingOut.model_validate(f) for f in finding_dicts(report.findings)],
        rewritten_sql=report.rewritten_sql,
        applied=list(report.applied),
        kind=report.runs_as or body.kind,
        mode=body.mode,
        dp=dict(report.dp) if report.dp is not None else None,
        budget_left=dict(report.budget_left) if report.budget_left is not None else None,
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Submit a job: stored before the answer; 202 queued, or 422 rejected with every finding",
    # job-rejected (422) carries `job_id` and `findings`; queue-full and quota-exceeded (429) `Retry-After`.
    responses={
        **raises(
            NotAuthenticated,
            Forbidden,
            NotFound,
            InvalidInput,
            ScopeNotActive,
            ScopeExpired,
            ScopeInconsistent,
            JobRejected,
            QueueFull,
            QuotaExceeded,
        ),
        202: {"links": {name: link(target, job_id=JOB_ID) for name, target in JOB_LINKS}},
    },
)
def submit_job(body: JobRequest, who: OperatorDep, services: ServicesDep) -> JobAccepted:
    view = services.jobs.submit(
        who, scope=body.scope, kind=body.kind, mode=body.mode, sql=body.sql, code=body.code
    )
    return JobAccepted(
        job_id=view.job_id,
        state=view.state,
        kind=view.kind,
        mode=body.mode,
        dp_budget=None if view.dp_budget is None else DpBudgetOut.model_validate(view.dp_budget),
    )


@router.get(
    "",
    summary="Jobs (operators: their own; auditors and admins: all), newest first",
    responses=raises(NotAuthenticated, Forbidden),
)
def list_jobs(
    who: JobReaderDep,
    services: ServicesDep,
    state: Annotated[str | None, Query(description="only jobs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobList:
    return JobList(
        jobs=[job_out(v) for v in services.jobs.list_jobs(who, state=state, limit=limit, offset=offset)]
    )


@router.get(
    "/{job_id}",
    summary="One job: state, reason, findings, timings (admins and auditors only); `wait` long-polls for "
    "its end",
    responses=raises(NotAuthenticated, Forbidden, NotFound, QuotaExceeded),
)
async def get_job(
    job_id: str,
    who: JobReaderDep,
    services: ServicesDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=JOB_WAIT_MAX_S,
            allow_inf_nan=False,
            description="seconds to wait for the job to finish or be withheld for review before answering "
            "(0: answer at once); the answer is the job as it is then",
        ),
    ] = 0,
) -> JobOut:
    # Async so that a waiting request holds no worker thread (JobService.wait reads in short hops).
    return job_out(await services.jobs.wait(who, job_id, wait_s=wait))


@router.get(
    "/{job_id}/result",
    summary="The released table with its suppression report (the owner only)",
    # Members the gateway did not write stay absent: the receipt signs the report as written.
    response_model_exclude_unset=True,
    responses=raises(NotAuthenticated, Forbidden, NotFound, JobNotReady),
)
def get_result(job_id: str, who: OperatorDep, services: ServicesDep) -> ResultOut:
    return ResultOut.model_validate(asdict(services.jobs.result(who, job_id)))


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a queued or running job",
    responses=raises(NotAuthenticated, Forbidden, NotFound, JobStateConflict),
)
def cancel_job(job_id: str, who: JobCancellerDep, services: ServicesDep) -> CancelOut:
    view, running = services.jobs.cancel(who, job_id)
    if running:
        services.runner.cancel(job_id)
    return CancelOut(job=job_out(view), stopping=running)
