"""What one gateway observes with: its metrics registry (or none) and its tracer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Tracer
from sqlalchemy.orm import Session

from executors.base import Executor
from sandbox_api.server.observability.metrics import Metrics, MetricsPort
from sandbox_api.server.observability.tracing import Tracing
from sandbox_api.server.services.job_states import JobState
from sandbox_api.server.settings import Settings
from sandbox_api.server.store.db import Database
from sandbox_api.server.store.models import JobRow


@runtime_checkable
class Traceable(Protocol):
    """An executor whose spans can go to the gateway's tracer (``executors.local``, ``ray_executor``)."""

    def trace_with(self, tracer: Tracer) -> None: ...


@dataclass(frozen=True)
class Observability:
    metrics: Metrics | None  # None: setting ``metrics_enabled`` is off
    tracing: Tracing
    metrics_port: int | None = None  # setting ``metrics_port``

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        db: Database,
        executor: Executor,
        clock: Callable[[], datetime],
        span_exporter: SpanExporter | None = None,
    ) -> Observability:
        """``span_exporter`` (tests: an in-memory one) replaces the exporter the settings name. An
        executor that can trace (``trace_with``) is given this gateway's tracer."""
        metrics = Metrics.create(db, executor=executor, clock=clock) if settings.metrics_enabled else None
        tracing = Tracing.create(settings, exporter=span_exporter)
        if tracing.provider is not None and isinstance(executor, Traceable):
            executor.trace_with(tracing.tracer)
        return cls(metrics=metrics, tracing=tracing, metrics_port=settings.metrics_port)

    def serve_metrics_port(self) -> MetricsPort | None:
        """Start serving the metrics on the loopback port, if one is set (the caller closes it)."""
        if self.metrics is None or self.metrics_port is None:
            return None
        return MetricsPort(self.metrics.registry, port=self.metrics_port)

    def transition(
        self, session: Session, row: JobRow, current: JobState, to: JobState, details: Mapping[str, object]
    ) -> None:
        """The job service's transition observer: metrics and the job's first span."""
        if self.metrics is not None:
            self.metrics.transition(session, row, current, to, details)
        self.tracing.transition(session, row, current, to, details)

    def close(self) -> None:
        """Flush and stop the span exporter."""
        self.tracing.close()
