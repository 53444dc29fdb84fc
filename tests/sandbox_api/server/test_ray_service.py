"""The gateway on the Ray backend: the same job, released with the same bytes as on the local executor."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sandbox_api.server.app import create_app
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, make_settings, wait_for_job, world

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("state")) as api:
        yield api


@pytest.fixture(scope="module")
def ray_gateway(deployment: World) -> Iterator[TestClient]:
    # A short path: Ray's Unix socket names must fit in 107 bytes. Token files stay inside it too.
    root = Path(tempfile.mkdtemp(prefix="sbxray-", dir="/tmp"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_TMPDIR", str(root))
        env.setenv("RAY_AUTH_MODE", "disabled")
        # A second gateway over the same deployment: its local Ray cluster serves the domains that exist.
        settings = make_settings(deployment.settings.state_dir, executor="ray", ray_local_cpus=2)
        try:
            with TestClient(create_app(settings)) as client:
                yield client
        finally:
            shutil.rmtree(root, ignore_errors=True)


def test_a_job_on_ray_is_released_with_the_local_executors_result_hash(
    deployment: World, ray_gateway: TestClient
) -> None:
    local = deployment.client.post(
        "/v1/jobs", headers=deployment.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL}
    )
    on_ray = ray_gateway.post(
        "/v1/jobs", headers=deployment.h("alice"), json={"scope": SCOPE, "sql": GOOD_SQL}
    )
    assert local.status_code == on_ray.status_code == 202, (local.text, on_ray.text)
    local_job = deployment.wait(local.json()["job_id"])
    ray_job = wait_for_job(ray_gateway, deployment.h("alice"), on_ray.json()["job_id"], timeout_s=120)
    assert local_job["state"] == ray_job["state"] == "released", (local_job, ray_job)
    assert ray_job["result_hash"] == local_job["result_hash"]
    result = ray_gateway.get(f"/v1/jobs/{on_ray.json()['job_id']}/result", headers=deployment.h("alice"))
    assert result.status_code == 200, result.text
    assert not any(c.startswith("_sbx") for c in result.json()["columns"])
