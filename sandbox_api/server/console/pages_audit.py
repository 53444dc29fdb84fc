"""The auditor's desk: the audit timeline with filters, the chain's verification status and signed head,
replay with its outcome, and the export (the same JSON Lines as ``GET /v1/audit/export``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response, StreamingResponse

from sandbox_api.server.console.rendering import SECURITY_HEADERS
from sandbox_api.server.console.web import PREFIX, AuditorV, Visitor

router = APIRouter(prefix=PREFIX, include_in_schema=False)

PAGE = 200


@router.get("/audit")
def audit_page(
    who: AuditorV,
    event: Annotated[str | None, Query(max_length=100)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    services = who.services
    event = event or None
    actor = actor or None
    services.audit.record(
        event="audit.read",
        actor=who.who.name,
        details={
            "filters": {
                "event": event,
                "actor": actor,
                "since_seq": None,
                "limit": PAGE,
                "newest_first": True,
            },
            "via": "console",
        },
    )
    # The newest first: on a long log, what an auditor looks for is usually recent.
    events = services.audit.events(event=event, actor=actor, since_seq=None, limit=PAGE, newest_first=True)
    return who.page(
        "audit.html", events=events, chain=chain_status(who), event=event or "", actor=actor or ""
    )


def chain_status(who: Visitor) -> dict[str, Any]:
    """The chain verified from genesis against the stored head, and every signed checkpoint: its
    signature under the published keys and its match with the chain (a rewritten tail fails here).
    Incremental, with older events re-hashed a window at a time (``chain_watch``)."""
    return who.state.chain_watch.status(who.services)


@router.get("/audit/export")
def audit_export(who: AuditorV) -> Response:
    services = who.services
    services.audit.record(event="audit.exported", actor=who.who.name, details={"via": "console"})

    def lines() -> Iterator[bytes]:
        for entry in services.audit.iter_all():
            yield (entry.to_json() + "\n").encode("utf-8")

    headers = {**SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="audit.jsonl"'}
    return who.finish(StreamingResponse(lines(), media_type="application/x-ndjson", headers=headers))


@router.post("/jobs/{job_id}/replay")
def replay_job(job_id: str, who: AuditorV) -> Response:
    report = who.services.replay.replay(who.who, job_id)
    return who.page("fragments/replay.html", report=report)
