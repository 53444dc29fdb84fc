"""Liveness and readiness: ready only when the database, the job runner and the executor are; otherwise
503 with each failing check named."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.testclient import TestClient

from sandbox_api.server.app import create_app
from tests.sandbox_api.api_helpers import make_settings
from tests.sandbox_api.server.observability.conftest import Observed


@contextmanager
def idle_gateway(state_dir: Path) -> Iterator[tuple[FastAPI, TestClient]]:
    """A gateway built but not started (as between its construction and its lifespan's start), on the
    SQLite store in ``state_dir`` (this module's store)."""
    app = create_app(make_settings(state_dir, warm_sandboxes=0))
    try:
        yield app, TestClient(app)
    finally:
        app.state.services.runner.executor.close()
        app.state.services.db.dispose()


def failing(answer_json: dict[str, object]) -> dict[str, str]:
    findings = answer_json["findings"]
    assert isinstance(findings, list)
    return {str(f["rule"]): str(f["message"]) for f in findings}


def test_a_running_gateway_is_alive_and_ready(observed: Observed) -> None:
    client = observed.api.client
    alive = client.get("/livez")
    assert alive.status_code == 200
    assert alive.json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "runner": "ok", "executor": "ok"}}


def test_a_gateway_whose_runner_has_not_started_is_alive_but_not_ready(observed: Observed) -> None:
    with idle_gateway(observed.api.settings.state_dir) as (_app, client):
        assert client.get("/livez").status_code == 200
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "service-unavailable"
        assert failing(answer.json()) == {"runner": "the job runner is not running"}


def test_a_closed_executor_makes_the_gateway_not_ready(observed: Observed) -> None:
    with idle_gateway(observed.api.settings.state_dir) as (app, client):
        app.state.services.runner.executor.close()
        reasons = failing(client.get("/readyz").json())
        assert reasons["executor"] == "the local executor is closed"


def test_a_database_that_does_not_answer_makes_the_gateway_not_ready(
    observed: Observed, tmp_path: Path
) -> None:
    # A copy of the deployment, so that breaking its database harms no other test.
    state = tmp_path / "state"
    shutil.copytree(observed.api.settings.state_dir, state)
    with idle_gateway(state) as (app, client):
        assert "database" not in failing(client.get("/readyz").json())
        app.state.services.db.dispose()  # drop pooled connections: the next one opens the file again
        for leftover in state.glob("metadata.db*"):
            leftover.unlink()
        (state / "metadata.db").write_bytes(b"this is not a database file" * 100)
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert failing(answer.json())["database"] == "the metadata database does not answer (DatabaseError)"
