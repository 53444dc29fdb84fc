"""The executor's side of a job's trace: its spans continue the trace context carried in the ``JobSpec``.

The context crosses the boundary as data (W3C ``traceparent`` in ``JobSpec.trace_context``), never as the
calling thread's implicit context, so it survives whatever carries the spec: a thread, a pickled process
payload or a Ray task on another node. An executor without a tracer of its own uses the process's
global OpenTelemetry tracer, a no-op one unless that process configured tracing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from executors.base import JobSpec

_PROPAGATOR = TraceContextTextMapPropagator()


def current_trace_context() -> dict[str, str]:
    """The calling span's context as a carrier for ``JobSpec.trace_context`` (empty when none)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


@contextmanager
def job_span(
    tracer: trace.Tracer | None, spec: JobSpec, name: str, *, attributes: Mapping[str, str] | None = None
) -> Iterator[trace.Span]:
    """A span named ``name`` whose parent is the context ``spec`` carries (none: a new trace)."""
    parent = _PROPAGATOR.extract(dict(spec.trace_context or {}))
    chosen = tracer if tracer is not None else trace.get_tracer(__name__)
    with chosen.start_as_current_span(
        name, context=parent, attributes={"sandbox.job_id": spec.job_id, **(attributes or {})}
    ) as span:
        yield span


def record_timings(span: trace.Span, timings: Mapping[str, float]) -> None:
    """The sandbox's own step durations (seconds) as attributes of the executor's span."""
    for step, seconds in timings.items():
        span.set_attribute(f"sandbox.timing.{step}_s", float(seconds))
