"""The release function, called with exactly what a replay has, gives back the released result.

Replay holds the job row, the scope version and a fresh result table. Building the spec with
``job_specs.sql_spec`` and calling ``release`` with the job's recorded facts must reproduce the
released hash; without the facts (as a replay that ignores them would) a rounded job does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox_api.server.deps import Services
from sandbox_api.server.services.job_specs import JobSpecs, sql_spec
from sandbox_api.server.services.release import Released, TableResult, release
from sandbox_api.server.services.release_facts import ReleaseFacts
from sandbox_api.server.store.models import JobRow
from tests.sandbox_api.api_helpers import World, world
from tests.sandbox_api.python_job_helpers import approve_scope, run_job
from tests.sandbox_api.release_helpers import rules_scope_yaml

SCOPE = "rounded-replayed"
SQL = "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("state")) as deployment:
        approve_scope(deployment, rules_scope_yaml(SCOPE, min_units=10, rounding="{base: 5}"), SCOPE)
        yield deployment


def _services(api: World) -> Services:
    services: Services = api.client.app.state.services  # type: ignore[attr-defined]
    return services


def _again(api: World, job_id: str) -> tuple[TableResult, JobRow, Any]:
    """Run the stored job once more, as replay does: its row, spec builder and executor."""
    services = _services(api)
    with services.db.read() as session:
        row = session.get(JobRow, job_id)
        assert row is not None
        session.expunge(row)
    specs = JobSpecs(
        catalog=services.catalog,
        pseudonym_master=services.keys.secret("pseudonym"),
        limits=services.replay.limits,
    )
    spec = sql_spec(
        job_id=f"{job_id}-again",
        sql=row.rewritten_sql or "",
        tables=specs.tables(row.inputs, row.dataset_versions),
        scope=row.scope,
        uses_keyed_hash=row.uses_keyed_hash,
        pseudonym_master=services.keys.secret("pseudonym"),
        limits=services.replay.limits,
    )
    result = services.replay.executor.run(spec)
    scope = services.scopes.active(row.scope, version_id=row.scope_version).scope
    return TableResult(result.to_pandas(), dict(result.engine)), row, scope


def test_the_release_function_with_the_recorded_facts_reproduces_the_released_result(api: World) -> None:
    job = run_job(api, {"scope": SCOPE, "sql": SQL})
    assert job["state"] == "released", job["reason"]
    candidate, row, scope = _again(api, job["job_id"])
    again = release(candidate, scope=scope, facts=ReleaseFacts.from_json(row.release_facts))
    assert isinstance(again, Released)
    assert again.result_hash == job["result_hash"]
    assert all(r[1] % 5 == 0 for r in again.rows)  # the counts were rounded, as released
    without = release(candidate, scope=scope, facts=ReleaseFacts())
    assert isinstance(without, Released)
    assert without.result_hash != job["result_hash"]  # a replay must pass the job's facts
