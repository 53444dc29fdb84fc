"""A real Python job's input plan: every table under a scope over one domain, as always; a job stored
with two domains' tables (before they were refused at submit) is never run in one sandbox."""

from __future__ import annotations

import pytest

from policies import PolicyViolation
from policies.examples import example_catalog, example_scope
from policies.python_inputs import input_plan
from sandbox_api.job_types import Kind, Mode
from sandbox_api.server.services.job_kinds import PYTHON_JOBS, StoredJob
from sandbox_api.server.services.job_specs import JobSpecs
from sandbox_api.server.services.python_plans import python_plan
from sandbox_api.server.services.release_facts import ReleaseFacts


@pytest.mark.parametrize("code", ["result = 1", "result = len(citizens)", "result = len(tables)"])
def test_a_scope_over_one_domain_hands_over_every_table_it_grants(code: str) -> None:
    scope, catalog = example_scope(), example_catalog()
    planned = python_plan(scope, catalog, code)
    assert planned.findings == ()
    assert planned.plan == input_plan(scope, catalog)


def _stored(inputs: list[dict[str, str]]) -> StoredJob:
    return StoredJob(
        job_id="j1",
        scope="s",
        scope_version="v",
        kind=Kind.PYTHON,
        mode=Mode.REAL,
        sql="",
        source_sql="",
        code="result = 1",
        inputs=inputs,
        dataset_versions={},
        uses_keyed_hash=False,
        attempt=1,
        facts=ReleaseFacts(),
    )


def test_a_stored_python_job_with_two_domains_tables_is_refused_before_any_key_is_looked_up() -> None:
    inputs = [
        {"dataset": "health-bureau/visits", "table": "visits", "sql_name": "visits"},
        {"dataset": "civil-affairs/citizens", "table": "citizens", "sql_name": "citizens"},
    ]
    # No catalog at all: the refusal comes before the tables (and their keys) are looked up.
    specs = JobSpecs(catalog=None, pseudonym_master=b"m" * 32, limits=None)  # type: ignore[arg-type]
    with pytest.raises(PolicyViolation) as refused:
        PYTHON_JOBS.spec(_stored(inputs), scope=example_scope(), specs=specs)
    assert [f.rule for f in refused.value.findings] == ["python_one_domain"]
