"""One deployment for the observability tests: real store, executor and runner, every span kept in
memory (no exporter reaches the network), and the metrics also served on a loopback port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.sandbox_api.api_helpers import World
from tests.sandbox_api.replay_helpers import replayed_world
from tests.sandbox_api.stores import NewStore


@dataclass(frozen=True)
class Observed:
    api: World
    spans: InMemorySpanExporter
    metrics_port: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, store: NewStore) -> Iterator[Observed]:
    """On the module's store (SQLite unless the module asks for both)."""
    spans = InMemorySpanExporter()
    port = free_port()
    with replayed_world(
        tmp_path_factory.mktemp("observed"),
        database_url=store(),
        span_exporter=spans,
        metrics_port=port,
        warm_sandboxes=1,
    ) as api:
        yield Observed(api=api, spans=spans, metrics_port=port)
