"""Token lifecycle: every token expires, can be listed without its secret and revoked alone; a principal
can be disabled and enabled; a domain administrator manages only their own domain's stewards and
operators. Every change is audited.

The deployment's clock is the test's, so expiry is tested by moving time rather than by waiting.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crypto.keyring import KeyProvider
from executors.base import Executor, JobSpec, ResultTable
from executors.errors import ExecutionCancelled
from executors.local import LocalExecutor
from sandbox_api.server.settings import Settings
from tests.sandbox_api.api_helpers import DOMAIN, GOOD_SQL, OTHER_DOMAIN, SCOPE, World, bearer, world
from tests.sandbox_api.stores import NewStore, on_both_stores

store = on_both_stores

TTL_DAYS = 7


class MovableClock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.offset += delta


class GatedExecutor:
    """The real local executor; jobs wait before they start until the test opens the gate."""

    def __init__(self, inner: LocalExecutor) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)
        self.cancelled: set[str] = set()

    def run(self, spec: JobSpec) -> ResultTable:
        self.started.release()
        while not self.gate.wait(0.02):
            if spec.job_id in self.cancelled:
                raise ExecutionCancelled(f"job {spec.job_id} was cancelled before it started")
        return self.inner.run(spec)

    def cancel(self, job_id: str) -> bool:
        self.cancelled.add(job_id)
        return True

    def close(self) -> None:
        self.gate.set()
        self.inner.close()


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture(scope="module")
def gates() -> list[GatedExecutor]:
    return []


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, store: NewStore, clock: MovableClock, gates: list[GatedExecutor]
) -> Iterator[World]:
    def factory(keys: KeyProvider, settings: Settings) -> Executor:
        gates.append(GatedExecutor(LocalExecutor(key_provider=keys, max_workers=1)))
        gates[-1].gate.set()  # open unless a test closes it
        return gates[-1]

    with world(
        tmp_path_factory.mktemp("state"),
        executor_factory=factory,
        clock=clock,
        max_concurrent_jobs=1,
        token_ttl_days=TTL_DAYS,
        token_max_ttl_days=30,
        database_url=store(),
    ) as deployment:
        yield deployment


def _principal(api: World, name: str, role: str = "operator", *, by: str = "admin", **extra: Any) -> str:
    answer = api.client.post("/v1/principals", headers=api.h(by), json={"name": name, "role": role, **extra})
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


def _whoami(api: World, token: str) -> int:
    return int(api.client.get("/v1/whoami", headers=bearer(token)).status_code)


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- expiry ------------------------------------------------------------------------------------------


def test_a_new_token_expires_after_the_configured_lifetime_and_says_so(
    api: World, clock: MovableClock
) -> None:
    answer = api.client.post(
        "/v1/principals", headers=api.h("admin"), json={"name": "ex1", "role": "operator"}
    )
    body = answer.json()
    expected = clock.now() + timedelta(days=TTL_DAYS)
    assert abs(_when(body["expires_at"]) - expected) < timedelta(minutes=1)
    assert re.fullmatch(r"[0-9a-f]{12}", body["token_id"])
    issued = api.client.post("/v1/principals/ex1/tokens", headers=api.h("admin"), json={"expires_in_days": 2})
    assert abs(_when(issued.json()["expires_at"]) - (clock.now() + timedelta(days=2))) < timedelta(minutes=1)
    logged = [e["details"] for e in api.audit_events("token.created") if e["details"]["principal"] == "ex1"]
    assert [(d["token_id"], _when(d["expires_at"])) for d in logged] == [
        (body["token_id"], _when(body["expires_at"])),
        (issued.json()["token_id"], _when(issued.json()["expires_at"])),
    ]


def test_an_expired_token_is_refused_and_the_refusal_is_audited(api: World, clock: MovableClock) -> None:
    short = api.client.post(
        "/v1/principals/alice/tokens", headers=api.h("admin"), json={"expires_in_days": 1}
    )
    token = short.json()["token"]
    assert _whoami(api, token) == 200
    clock.advance(timedelta(days=1, seconds=1))
    try:
        answer = api.client.get("/v1/whoami", headers=bearer(token))
        assert answer.status_code == 401
        assert "expired" in answer.json()["detail"]
        assert any("expired" in e["details"]["reason"] for e in api.audit_events("auth.failed"))
        assert _whoami(api, api.tokens["alice"]) == 200  # the others, issued for 7 days, still work
    finally:
        clock.advance(-timedelta(days=1, seconds=1))


def test_a_lifetime_beyond_the_maximum_is_refused(api: World) -> None:
    answer = api.client.post(
        "/v1/principals/alice/tokens", headers=api.h("admin"), json={"expires_in_days": 31}
    )
    assert answer.status_code == 422
    assert "token_max_ttl_days" in answer.json()["detail"]


# --- listing and revoking one ------------------------------------------------------------------------


def test_tokens_are_listed_with_ids_names_and_dates_but_never_the_secret(api: World) -> None:
    secret = _principal(api, "lister")
    named = api.client.post("/v1/principals/lister/tokens", headers=api.h("admin"), json={"name": "laptop"})
    assert _whoami(api, secret) == 200
    listing = api.client.get("/v1/principals/lister/tokens", headers=api.h("admin"))
    assert listing.status_code == 200
    rows = listing.json()
    assert [r["name"] for r in rows] == ["", "laptop"]
    assert rows[1]["id"] == named.json()["token_id"]
    assert rows[0]["last_used_at"] is not None
    assert rows[1]["last_used_at"] is None
    assert all(r["expires_at"] and r["created_at"] and r["revoked_at"] is None for r in rows)
    # Neither secret, nor anything as long as a whole SHA-256 (which would let the id be checked offline).
    assert secret not in listing.text
    assert named.json()["token"] not in listing.text
    assert "sbx_" not in listing.text
    assert re.search(r"[0-9a-f]{20,}", listing.text) is None


def test_one_token_is_revoked_alone_and_the_revocation_is_audited(api: World) -> None:
    first = _principal(api, "two-tokens")
    second = api.client.post("/v1/principals/two-tokens/tokens", headers=api.h("admin")).json()
    revoked = api.client.delete(
        f"/v1/principals/two-tokens/tokens/{second['token_id']}", headers=api.h("admin")
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert _whoami(api, second["token"]) == 401
    assert _whoami(api, first) == 200
    events = [e for e in api.audit_events("token.revoked") if e["details"]["principal"] == "two-tokens"]
    assert [(e["actor"], e["details"]["token_id"]) for e in events] == [("admin", second["token_id"])]


def test_a_token_id_of_another_principal_is_not_found(api: World) -> None:
    _principal(api, "victim")
    victim_id = api.client.get("/v1/principals/victim/tokens", headers=api.h("admin")).json()[0]["id"]
    _principal(api, "bystander")
    answer = api.client.delete(f"/v1/principals/bystander/tokens/{victim_id}", headers=api.h("admin"))
    assert answer.status_code == 404
    for bad in ("%25", "0" * 64, victim_id[:6]):  # no pattern, no whole hash, no shorter prefix
        assert (
            api.client.delete(f"/v1/principals/victim/tokens/{bad}", headers=api.h("admin")).status_code
            == 404
        )


# --- disable and enable -----------------------------------------------------------------------------


def test_a_disabled_principal_is_locked_out_until_enabled(api: World) -> None:
    token = _principal(api, "dis1")
    other = api.client.post("/v1/principals/dis1/tokens", headers=api.h("admin")).json()["token"]
    disabled = api.client.post("/v1/principals/dis1/disable", headers=api.h("admin"))
    assert disabled.status_code == 200
    assert disabled.json()["principal"]["disabled"] is True
    assert (_whoami(api, token), _whoami(api, other)) == (401, 401)
    assert "disabled" in api.client.get("/v1/whoami", headers=bearer(token)).json()["detail"]
    # A token issued while disabled does not get in either.
    fresh = api.client.post("/v1/principals/dis1/tokens", headers=api.h("admin")).json()["token"]
    assert _whoami(api, fresh) == 401
    listed = {
        p["name"]: p["disabled"] for p in api.client.get("/v1/principals", headers=api.h("admin")).json()
    }
    assert listed["dis1"] is True
    assert api.client.post("/v1/principals/dis1/enable", headers=api.h("admin")).status_code == 200
    assert (_whoami(api, token), _whoami(api, other), _whoami(api, fresh)) == (200, 200, 200)
    kinds = [e["event"] for e in api.audit_events() if e["details"].get("principal") == "dis1"]
    assert "principal.disabled" in kinds
    assert "principal.enabled" in kinds


def test_an_admin_cannot_disable_themselves(api: World) -> None:
    answer = api.client.post("/v1/principals/admin/disable", headers=api.h("admin"))
    assert answer.status_code == 409
    assert _whoami(api, api.tokens["admin"]) == 200


def test_disabling_an_operator_cancels_its_queued_jobs_and_stops_its_running_one(
    api: World, gates: list[GatedExecutor]
) -> None:
    token = _principal(api, "busy", groups=["analysts"])
    gate = gates[-1]  # this store's deployment (the fixture list outlives one parametrisation)
    gate.gate.clear()
    try:
        ids = []
        for _ in range(2):
            answer = api.client.post(
                "/v1/jobs", headers=bearer(token), json={"scope": SCOPE, "sql": GOOD_SQL}
            )
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["job_id"])
        assert gate.started.acquire(timeout=30)  # the first runs (held at the gate), the second queues
        status = api.client.post("/v1/principals/busy/disable", headers=api.h("admin")).json()
        assert (status["jobs_cancelled"], status["jobs_stopping"]) == (1, 1)
        assert ids[0] in gate.cancelled
    finally:
        gate.gate.set()
    states = [api.wait(job_id, who="admin")["state"] for job_id in ids]
    assert states == ["cancelled", "cancelled"]
    reasons = [
        e["details"]["reason"] for e in api.audit_events("job.cancelled") if e["details"]["job"] in ids
    ]
    assert reasons
    assert all("disabled" in r or "cancel" in r for r in reasons)


# --- domain administrators ---------------------------------------------------------------------------


def test_a_domain_administrator_manages_their_own_domains_stewards_and_operators(api: World) -> None:
    steward = _principal(api, "stu2", "steward", by="dana", domain=DOMAIN)
    operator = api.client.post(
        "/v1/principals", headers=api.h("dana"), json={"name": "op-dana", "role": "operator"}
    ).json()
    assert operator["principal"]["domain"] == DOMAIN  # her operators belong to her domain
    created = {e["details"]["name"]: e["actor"] for e in api.audit_events("principal.created")}
    assert (created["stu2"], created["op-dana"]) == ("dana", "dana")
    assert _whoami(api, steward) == 200
    listed = {p["name"] for p in api.client.get("/v1/principals", headers=api.h("dana")).json()}
    assert {"stu", "stu2", "op-dana"} <= listed
    assert listed.isdisjoint({"cleo", "admin", "alice", "olga", "audra", "chad", "dana"})
    for path in ("/v1/principals/op-dana/disable", "/v1/principals/op-dana/enable"):
        assert api.client.post(path, headers=api.h("dana")).status_code == 200
    assert api.client.get("/v1/principals/stu2/tokens", headers=api.h("dana")).status_code == 200
    assert api.client.post("/v1/principals/stu2/tokens", headers=api.h("dana")).status_code == 201


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/principals", {"name": "mallory", "role": "admin"}),
        ("POST", "/v1/principals", {"name": "mallory", "role": "domain_admin", "domain": DOMAIN}),
        ("POST", "/v1/principals", {"name": "mallory", "role": "auditor"}),
        ("POST", "/v1/principals", {"name": "mallory", "role": "steward", "domain": OTHER_DOMAIN}),
        ("POST", "/v1/principals", {"name": "mallory", "role": "operator", "domain": OTHER_DOMAIN}),
        ("POST", "/v1/principals/cleo/disable", None),  # a steward of another domain
        ("POST", "/v1/principals/admin/disable", None),
        ("POST", "/v1/principals/audra/tokens", None),
        ("GET", "/v1/principals/olga/tokens", None),
        ("DELETE", "/v1/principals/alice/tokens", None),  # an operator of no domain
        ("DELETE", "/v1/principals/cleo/tokens/" + "0" * 12, None),
    ],
)
def test_a_domain_administrator_is_refused_outside_their_domain_and_audited(
    api: World, method: str, path: str, body: Any
) -> None:
    before = len([e for e in api.audit_events("request.denied") if e["actor"] == "dana"])
    kwargs: dict[str, Any] = {"headers": api.h("dana")}
    if body is not None:
        kwargs["json"] = body
    answer = api.client.request(method, path, **kwargs)
    assert answer.status_code == 403, answer.text
    after = len([e for e in api.audit_events("request.denied") if e["actor"] == "dana"])
    assert after == before + 1
    assert "mallory" not in {
        p["name"] for p in api.client.get("/v1/principals", headers=api.h("admin")).json()
    }


def test_a_steward_may_not_manage_principals(api: World) -> None:
    assert api.client.post("/v1/principals/bob/disable", headers=api.h("stu")).status_code == 403
