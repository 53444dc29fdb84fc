"""OpenTelemetry traces: a request through the gateway, and a job through the runner and the executor.

A job outlives the request that submitted it and may be run by another gateway on the same database, or
after a restart. So a job's spans do not hang off the request: they form the job's own trace, whose
trace id *is* the job id (both are 128 random bits in hex) under a parent span id derived from it. Any
gateway can rebuild that context from the id alone, nothing needs storing, and an operator who holds a
job id can look its trace up directly. The request's span carries ``sandbox.job_id`` and the job's first
span (``job.submitted``) links back to the request's span.

From the runner to the executor the context travels inside the ``JobSpec`` (``trace_context``, W3C
``traceparent``), the way it would cross to a Ray node or another process; the executor opens its span
from that, not from whatever context its thread has (``executors/tracing.py``).

One tracer provider per gateway, never the process-global one; with ``trace_exporter=off`` the tracer
is OpenTelemetry's no-op tracer, so spans cost next to nothing.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags
from sqlalchemy.orm import Session

from sandbox_api.server.services.job_states import JobState
from sandbox_api.server.settings import Settings
from sandbox_api.server.store.models import JobRow

SERVICE_NAME = "data-sandbox"
TRACER_NAME = "sandbox_api"


def job_context(job_id: str, *, sample_ratio: float = 1.0) -> Context:
    """The parent of every span of job ``job_id``: trace id = the job id, span id derived from it.

    Sampled or not by the trace id alone (the rule of ``TraceIdRatioBased``), so every gateway decides
    the same for one job.

    >>> span = trace.get_current_span(job_context("9f2c41aa" * 4)).get_span_context()
    >>> format(span.trace_id, "032x") == "9f2c41aa" * 4, span.is_remote
    (True, True)
    """
    if len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id):
        trace_id = int(job_id, 16)
    else:  # not a job id of ours: still one stable trace per id
        trace_id = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:16], "big")
    span_id = int.from_bytes(hashlib.sha256(b"sandbox-job:" + job_id.encode()).digest()[:8], "big") or 1
    decision = TraceIdRatioBased(sample_ratio).should_sample(None, trace_id, "job").decision
    sampled = decision is Decision.RECORD_AND_SAMPLE
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    parent = SpanContext(trace_id=trace_id, span_id=span_id, is_remote=True, trace_flags=flags)
    return trace.set_span_in_context(NonRecordingSpan(parent))


@dataclass(frozen=True)
class Tracing:
    """This gateway's tracer (a no-op one when tracing is off) and its provider, shut down on stop."""

    tracer: trace.Tracer
    provider: TracerProvider | None
    sample_ratio: float

    @classmethod
    def create(cls, settings: Settings, *, exporter: SpanExporter | None = None) -> Tracing:
        """From the settings; ``exporter`` (tests: an in-memory one) replaces the configured one and
        exports each span as it ends."""
        processor: SpanProcessor | None
        if exporter is not None:
            processor = SimpleSpanProcessor(exporter)
        elif settings.trace_exporter == "console":
            # The standard output of now (the exporter's default is the one of its import).
            processor = BatchSpanProcessor(ConsoleSpanExporter(out=sys.stdout))
        else:
            processor = None
        if processor is None:
            return cls(tracer=trace.NoOpTracer(), provider=None, sample_ratio=settings.trace_sample_ratio)
        provider = TracerProvider(
            resource=Resource.create({"service.name": SERVICE_NAME}),
            sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
        )
        provider.add_span_processor(processor)
        return cls(
            tracer=provider.get_tracer(TRACER_NAME),
            provider=provider,
            sample_ratio=settings.trace_sample_ratio,
        )

    def job_context(self, job_id: str) -> Context:
        return job_context(job_id, sample_ratio=self.sample_ratio)

    def transition(
        self, session: Session, row: JobRow, current: JobState, to: JobState, details: Mapping[str, object]
    ) -> None:
        """At submission: the job's first span, in its own trace, linked to the submitting request."""
        del session, details
        if current is not JobState.SUBMITTED or self.provider is None:
            return
        request = trace.get_current_span()
        request.set_attribute("sandbox.job_id", row.id)
        links = [Link(request.get_span_context())] if request.get_span_context().is_valid else []
        span = self.tracer.start_span(
            "job.submitted",
            context=self.job_context(row.id),
            links=links,
            attributes={
                "sandbox.job_id": row.id,
                "sandbox.job.kind": row.kind or "sql",
                "sandbox.job.state": to.value,
            },
        )
        span.end()

    def close(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()
