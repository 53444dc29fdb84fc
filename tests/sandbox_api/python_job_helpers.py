"""Helpers for the Python-job, mock-mode and review tests: Python-enabled scopes over the test world."""

from __future__ import annotations

from typing import Any

from tests.sandbox_api.api_helpers import DATASET, DOMAIN, World

PY_ONE = "py-one"  # one output checker
PY_TWO = "py-two"  # two independent output checkers
NO_PY = "flu-study"  # the world's own scope: Python not allowed


def python_scope_yaml(name: str, *, checkers: int, min_units: int = 10) -> str:
    return f"""
scope: {name}
purpose: "Python analyses of the citizen register"
grantees: [operator:alice, operator:bob]
valid: {{from: 2020-01-01, until: 2099-12-31}}
datasets:
  {DOMAIN}/{DATASET}:
    unit: person_id
    row_filter: "district <> 'Harbour'"
    columns:
      person_id: {{use: join_key}}
      name: {{use: deny}}
      district: {{use: group}}
      sex: {{use: group}}
      birth_date: {{mask: {{generalize: year}}, use: group}}
      income: {{use: aggregate, functions: [sum, avg, count], bounds: [0, 100000]}}
disclosure:
  min_units: {min_units}
  suppression: drop
  max_rows: 1000
python: {{allowed: true, modules: [pandas, numpy, math, statistics]}}
review: {{checkers: {checkers}}}
"""


def approve_scope(api: World, document: str, name: str) -> str:
    created = api.client.post(
        "/v1/scopes", headers=api.h("olga"), json={"document": document, "format": "yaml"}
    )
    assert created.status_code in (200, 201), created.text
    version = str(created.json()["version"]["version_id"])
    if created.json()["version"]["state"] == "pending":
        approved = api.client.post(
            f"/v1/scopes/{name}/versions/{version}/approve", headers=api.h("oscar"), json={"reason": "ok"}
        )
        assert approved.status_code == 200, approved.text
    return version


def ensure_python_world(api: World) -> dict[str, str]:
    """Both Python scopes approved and a second output checker, 'cora'; returns cora's token."""
    approve_scope(api, python_scope_yaml(PY_ONE, checkers=1), PY_ONE)
    approve_scope(api, python_scope_yaml(PY_TWO, checkers=2), PY_TWO)
    created = api.client.post(
        "/v1/principals", headers=api.h("admin"), json={"name": "cora", "role": "output_checker"}
    )
    if created.status_code == 201:
        return {"Authorization": f"Bearer {created.json()['token']}"}
    token = api.client.post("/v1/principals/cora/tokens", headers=api.h("admin")).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def submit(api: World, body: dict[str, Any], *, who: str = "alice") -> Any:
    return api.client.post("/v1/jobs", headers=api.h(who), json=body)


def run_job(
    api: World, body: dict[str, Any], *, who: str = "alice", timeout_s: float = 60.0
) -> dict[str, Any]:
    answer = submit(api, body, who=who)
    assert answer.status_code == 202, answer.text
    return api.wait(answer.json()["job_id"], who=who, timeout_s=timeout_s)


def result_of(api: World, job_id: str, *, who: str = "alice") -> dict[str, Any]:
    answer = api.client.get(f"/v1/jobs/{job_id}/result", headers=api.h(who))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
