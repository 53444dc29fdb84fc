"""The executor's spans continue the trace carried in the spec, not whatever context their thread has."""

from __future__ import annotations

import threading

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from executors.base import JobSpec
from executors.tracing import current_trace_context, job_span, record_timings


def traced() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_the_spec_carries_the_runners_span_to_an_executor_in_another_thread() -> None:
    provider, exporter = traced()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("job.run") as run:
        spec = JobSpec(
            job_id="j1", sql="SELECT 1", tables=(), keyed_hash_key=None, trace_context=current_trace_context()
        )

    def executor_side() -> None:  # a fresh thread: no current span, only the spec
        with job_span(tracer, spec, "executor.run") as span:
            record_timings(span, {"query": 0.25})

    worker = threading.Thread(target=executor_side)
    worker.start()
    worker.join()
    (executed,) = [s for s in exporter.get_finished_spans() if s.name == "executor.run"]
    assert executed.parent is not None
    assert executed.parent.span_id == run.get_span_context().span_id
    assert executed.context is not None
    assert executed.context.trace_id == run.get_span_context().trace_id
    assert dict(executed.attributes or {}) == {"sandbox.job_id": "j1", "sandbox.timing.query_s": 0.25}


def test_a_spec_without_a_context_starts_a_new_trace() -> None:
    provider, exporter = traced()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("unrelated"):
        spec = JobSpec(job_id="j2", sql="SELECT 1", tables=(), keyed_hash_key=None)
        with job_span(tracer, spec, "executor.run"):
            pass
    (executed,) = [s for s in exporter.get_finished_spans() if s.name == "executor.run"]
    assert executed.parent is None  # the spec, not the thread's current span, decides the parent


def test_without_a_tracer_the_process_global_one_is_used_and_records_nothing() -> None:
    spec = JobSpec(job_id="j3", sql="SELECT 1", tables=(), keyed_hash_key=None)
    with job_span(None, spec, "executor.run") as span:
        assert not span.is_recording()
