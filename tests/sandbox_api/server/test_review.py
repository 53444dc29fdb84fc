"""The airlock: withheld Python outputs, output checkers' review, two-checker scopes, and the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox_api.errors import Forbidden
from sandbox_api.roles import Role
from sandbox_api.server.auth import Principal
from sandbox_api.server.deps import Services
from sandbox_api.server.services.review import ReviewService
from tests.sandbox_api.api_helpers import World
from tests.sandbox_api.python_job_helpers import PY_ONE, PY_TWO, ensure_python_world, result_of, run_job
from tests.sandbox_api.replay_helpers import replayed_world

MODEL = """
import numpy as np
x = citizens['birth_date'].astype(str).str[:4].astype(float).to_numpy()
y = citizens['income'].to_numpy()
slope, intercept = np.polyfit(x, y, 1)
result = {'slope': float(slope), 'intercept': float(intercept), 'n': int(len(x))}
"""
AGGREGATE = "result = aggregate(citizens, by='sex', aggs={'people': ('income', 'count')})"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, dict[str, str]]]:
    with replayed_world(tmp_path_factory.mktemp("state")) as deployment:
        cora = ensure_python_world(deployment)
        yield deployment, cora


def withheld_model(api: World, scope: str = PY_ONE) -> dict[str, Any]:
    job = run_job(api, {"scope": scope, "kind": "python", "code": MODEL})
    assert job["state"] == "withheld", job["reason"]
    return job


def test_model_coefficients_are_withheld_then_released_by_a_checker(
    api: tuple[World, dict[str, str]],
) -> None:
    world_, _ = api
    job = withheld_model(world_)
    job_id = job["job_id"]
    # The operator reads neither the report nor how many flags it raised (that can depend on one
    # person); an auditor reads the number.
    assert job["review"] == {"required": 1, "decisions": [], "flags": None}
    audited = world_.client.get(f"/v1/jobs/{job_id}", headers=world_.h("audra")).json()
    assert isinstance(audited["review"]["flags"], int)
    # The operator sees the state, never the content, until release.
    assert world_.client.get(f"/v1/jobs/{job_id}/result", headers=world_.h("alice")).status_code == 409
    assert world_.client.get(f"/v1/reviews/{job_id}", headers=world_.h("alice")).status_code == 403
    pending = world_.client.get("/v1/reviews", headers=world_.h("chad")).json()["reviews"]
    assert job_id in {r["job_id"] for r in pending}
    assert all(r["output"] is None for r in pending)  # the list never carries content
    seen = world_.client.get(f"/v1/reviews/{job_id}", headers=world_.h("chad")).json()
    items = {k: v["value"] for k, v in seen["output"]["summary"]["items"]}
    assert set(items) == {"slope", "intercept", "n"}
    assert items["n"] > 1000
    assert any(f["rule"] == "residual-df" for f in seen["report"]["findings"])
    assert seen["code"] == MODEL
    assert seen["owner"] == "alice"

    released = world_.client.post(
        f"/v1/reviews/{job_id}/release", headers=world_.h("chad"), json={"reason": "two coefficients, n>1000"}
    )
    assert released.status_code == 200
    assert released.json()["state"] == "released"
    result = result_of(world_, job_id)
    got = {k: v["value"] for k, v in result["output"]["summary"]["items"]}
    assert got == items
    assert result["result_hash"]
    job = world_.wait(job_id)
    assert job["review"]["decisions"][0]["checker"] == "chad"

    events = [e for e in world_.audit_events() if e["details"].get("job") == job_id]
    names = [(e["event"], e["actor"]) for e in events]
    assert ("review.viewed", "chad") in names
    assert ("review.decision.recorded", "chad") in names
    assert ("job.withheld", "system") in names
    assert ("job.released", "chad") in names
    again = world_.client.post(f"/v1/reviews/{job_id}/release", headers=world_.h("chad"), json={})
    assert again.status_code == 409  # never released twice


def test_a_checker_never_reviews_their_own_job(api: tuple[World, dict[str, str]]) -> None:
    world_, _ = api
    job_id = withheld_model(world_)["job_id"]
    services: Services = world_.client.app.state.services  # type: ignore[attr-defined]
    reviews = ReviewService(services.jobs)
    # Roles are one per principal, so over HTTP an author cannot be a checker; the rule still holds
    # in the service itself for a checker principal carrying the author's name.
    author_as_checker = Principal(name="alice", role=Role.OUTPUT_CHECKER, domain=None, groups=())
    before = len(world_.audit_events("request.denied"))
    with pytest.raises(Forbidden, match="never reviews their own job"):
        reviews.decide(author_as_checker, job_id, decision="release", reason="x")
    with pytest.raises(Forbidden, match="never reviews their own job"):
        reviews.get(author_as_checker, job_id)
    assert len(world_.audit_events("request.denied")) == before + 2
    assert job_id not in {r.job_id for r in reviews.list_pending(author_as_checker)}
    assert world_.wait(job_id)["state"] == "withheld"


def test_two_checker_scope_needs_two_different_checkers(api: tuple[World, dict[str, str]]) -> None:
    world_, cora = api
    job_id = withheld_model(world_, PY_TWO)["job_id"]
    first = world_.client.post(
        f"/v1/reviews/{job_id}/release", headers=world_.h("chad"), json={"reason": "ok"}
    )
    assert first.status_code == 200
    assert first.json()["state"] == "withheld"
    assert first.json()["required_checkers"] == 2
    assert len(first.json()["decisions"]) == 1
    assert world_.client.get(f"/v1/jobs/{job_id}/result", headers=world_.h("alice")).status_code == 409
    twice = world_.client.post(
        f"/v1/reviews/{job_id}/release", headers=world_.h("chad"), json={"reason": "ok"}
    )
    assert twice.status_code == 409
    second = world_.client.post(f"/v1/reviews/{job_id}/release", headers=cora, json={"reason": "agreed"})
    assert second.status_code == 200
    assert second.json()["state"] == "released"
    assert result_of(world_, job_id)["output"]["summary"]["type"] == "dict"


def test_one_denial_ends_the_review_with_its_reason(api: tuple[World, dict[str, str]]) -> None:
    world_, cora = api
    job_id = withheld_model(world_, PY_TWO)["job_id"]
    no_reason = world_.client.post(f"/v1/reviews/{job_id}/deny", headers=cora, json={})
    assert no_reason.status_code == 422
    denied = world_.client.post(
        f"/v1/reviews/{job_id}/deny", headers=cora, json={"reason": "intercept reveals a small group"}
    )
    assert denied.status_code == 200
    assert denied.json()["state"] == "denied"
    job = world_.wait(job_id)
    assert job["state"] == "denied"
    assert "intercept reveals a small group" in job["reason"]
    late = world_.client.post(f"/v1/reviews/{job_id}/release", headers=world_.h("chad"), json={})
    assert late.status_code == 409
    assert world_.client.get(f"/v1/jobs/{job_id}/result", headers=world_.h("alice")).status_code == 409


def test_printed_output_holds_back_an_aggregate(api: tuple[World, dict[str, str]]) -> None:
    world_, _ = api
    code = "print(citizens['person_id'].head(3).tolist())\n" + AGGREGATE
    job = run_job(world_, {"scope": PY_ONE, "kind": "python", "code": code})
    assert job["state"] == "withheld", job["reason"]
    seen = world_.client.get(f"/v1/reviews/{job['job_id']}", headers=world_.h("chad")).json()
    assert seen["output"]["table"]["columns"] == ["sex", "people"]
    assert seen["output"]["printed"]
    assert any(
        f["rule"] == "identifier" and f["where"] == "printed output" for f in seen["report"]["findings"]
    )
    denied = world_.client.post(
        f"/v1/reviews/{job['job_id']}/deny", headers=world_.h("chad"), json={"reason": "printed unit ids"}
    )
    assert denied.json()["state"] == "denied"


def test_aggregate_named_like_a_restricted_column_goes_to_a_checker(
    api: tuple[World, dict[str, str]],
) -> None:
    world_, _ = api
    code = "result = aggregate(citizens, by='district', aggs={'income': ('income', 'mean')})"
    job = run_job(world_, {"scope": PY_ONE, "kind": "python", "code": code})
    assert job["state"] == "withheld", job["reason"]
    seen = world_.client.get(f"/v1/reviews/{job['job_id']}", headers=world_.h("chad")).json()
    assert any(f["rule"] == "group-key-use" for f in seen["report"]["findings"])
