"""A client generated from the OpenAPI document works as an integrator would use it.

``openapi-python-client`` (a standard generator, installed by ``scripts/setup.sh`` in its own
environment, ``.venv-codegen``) writes a Python package from ``/openapi.json``; the test imports it and,
over loopback against a live gateway, signs in, submits a job, reads the released result, and reads
the findings of a refused job from the typed problem document.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World
from tests.sandbox_api.loopback import served

ROOT = Path(__file__).resolve().parents[3]
GENERATOR = ROOT / ".venv-codegen" / "bin" / "openapi-python-client"
PACKAGE = "data_sandbox_client"


@pytest.fixture(scope="module")
def generated(api: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    assert GENERATOR.exists(), f"{GENERATOR} is missing: run `bash scripts/setup.sh`"
    out = tmp_path_factory.mktemp("generated")
    document = out / "openapi.json"
    document.write_text(json.dumps(api.client.app.openapi()), encoding="utf-8")  # type: ignore[attr-defined]
    env = {**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(document), "--meta", "none"],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def client(api: World, generated: ModuleType) -> Iterator[Any]:
    with (
        served(api.client.app) as url,
        generated.AuthenticatedClient(base_url=url, token=api.tokens["alice"]) as client,
    ):
        yield client


def module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_signs_in(client: Any) -> None:
    me = module("api.system.whoami").sync(client=client)
    assert (me.name, me.role.value) == ("alice", "operator")


def test_submits_a_job_and_reads_the_released_result(client: Any) -> None:
    request = module("models").JobRequest(scope=SCOPE, sql=GOOD_SQL)
    accepted = module("api.jobs.submit_job").sync(client=client, body=request)
    assert accepted.state == "queued", accepted
    job = module("api.jobs.get_job").sync(accepted.job_id, client=client, wait=30)
    assert job.state == "released", job
    result = module("api.jobs.get_result").sync(accepted.job_id, client=client)
    assert result.columns == ["district", "n", "avg_income"]
    assert result.row_count == len(result.rows) > 0
    assert result.report.rows_released == result.row_count


def test_reads_a_refusals_findings_from_the_problem_document(client: Any) -> None:
    models = module("models")
    refused = module("api.jobs.submit_job").sync_detailed(
        client=client, body=models.JobRequest(scope=SCOPE, sql="SELECT name FROM citizens")
    )
    assert refused.status_code == 422
    problem = refused.parsed
    assert isinstance(problem, models.ProblemOut)
    assert problem.code == "job-rejected"
    assert problem.job_id
    assert problem.state == "rejected"
    assert any("name" in finding.fragment for finding in problem.findings), problem.findings
    stored = module("api.jobs.get_job").sync(problem.job_id, client=client)
    assert stored.state == "rejected"
