"""The audit log for auditors: events (filters, paging), JSON Lines export, the signed head."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from crypto.audit import AuditEntry
from sandbox_api.clock import iso
from sandbox_api.schemas import AuditEventOut, AuditHeadOut, AuditPage, CheckpointOut, SigningKeyOut
from sandbox_api.server.deps import AuditorDep, ServicesDep

router = APIRouter(prefix="/v1/audit", tags=["audit"])


def event_out(entry: AuditEntry) -> AuditEventOut:
    return AuditEventOut(
        seq=entry.seq,
        at=entry.at,
        event=entry.event,
        actor=entry.actor,
        details=dict(entry.details),
        prev_hash=entry.prev_hash,
        hash=entry.hash,
        format=entry.format,
    )


@router.get("/events", summary="Audit events, oldest first, after `since_seq`")
def list_events(
    who: AuditorDep,
    services: ServicesDep,
    event: Annotated[str | None, Query(description="an event name, or a prefix ending in '.' (job.)")] = None,
    actor: Annotated[str | None, Query()] = None,
    since_seq: Annotated[int | None, Query(ge=-1, description="only events with a larger seq")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    services.audit.record(
        event="audit.read",
        actor=who.name,
        details={"filters": {"event": event, "actor": actor, "since_seq": since_seq, "limit": limit}},
    )
    entries = services.audit.events(event=event, actor=actor, since_seq=since_seq, limit=limit)
    return AuditPage(
        events=[event_out(e) for e in entries],
        next_since_seq=entries[-1].seq if len(entries) == limit else None,
    )


@router.get(
    "/export",
    summary="The whole chain as JSON Lines (one canonical event per line), streamed",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def export_events(who: AuditorDep, services: ServicesDep) -> StreamingResponse:
    # The export's own audit event comes first, so the exported chain contains it.
    services.audit.record(event="audit.exported", actor=who.name, details={})

    def lines() -> Iterator[bytes]:
        for entry in services.audit.iter_all():
            yield (entry.to_json() + "\n").encode("utf-8")

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
    )


@router.get("/head", summary="The chain head, signed now: keep a copy elsewhere to detect truncation")
def audit_head(who: AuditorDep, services: ServicesDep) -> AuditHeadOut:
    services.audit.record(event="audit.read", actor=who.name, details={"what": "head"})
    head = services.audit.head()
    checkpoint = None
    if head.last_seq is not None:
        signed = services.audit.sign_head(seq=head.last_seq, head_hash=head.hash)
        checkpoint = CheckpointOut(**{**asdict(signed), "signature": signed.signature.hex()})
    return AuditHeadOut(
        count=head.count,
        last_seq=head.last_seq,
        hash=head.hash,
        at=head.at,
        checkpoint=checkpoint,
        signing_keys=[
            SigningKeyOut(
                kid=k.kid,
                public=k.public.hex(),
                not_before=iso(k.not_before),
                not_after=None if k.not_after is None else iso(k.not_after),
                state=k.state,
            )
            for k in services.keys.signing_keys()
        ],
    )
