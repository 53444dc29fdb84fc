"""Helpers for the service tests: small generated datasets, scope documents, a fully set-up deployment."""

from __future__ import annotations

import io
import json
import random
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette asks for the `httpx2` fork in its test client; the pinned `httpx` still works fine.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from sandbox_api.clock import Clock
from sandbox_api.server.app import create_app
from sandbox_api.server.bootstrap import init_deployment
from sandbox_api.server.services.release import ReleaseFn, release
from sandbox_api.server.settings import Settings

DOMAIN = "health-bureau"
OTHER_DOMAIN = "civil-affairs"
DATASET = "citizens"
SCOPE = "flu-study"
DISTRICTS = ["North", "South", "East", "West", "Harbour", "Tiny"]
DISTRICT_WEIGHTS = [40, 25, 15, 12, 7, 0.3]

CITIZENS_MANIFEST: dict[str, Any] = {
    "tables": [
        {
            "name": "citizens",
            "unit": "person_id",
            "columns": [
                {"name": "person_id", "type": "VARCHAR", "class": "identifying"},
                {"name": "name", "type": "VARCHAR", "class": "identifying"},
                {
                    "name": "district",
                    "type": "VARCHAR",
                    "class": "internal",
                    "domain": {"categories": DISTRICTS},
                },
                {"name": "sex", "type": "VARCHAR", "class": "internal", "domain": {"categories": ["F", "M"]}},
                {"name": "birth_date", "type": "DATE", "class": "sensitive"},
                {
                    "name": "income",
                    "type": "DOUBLE",
                    "class": "sensitive",
                    "domain": {"low": 0, "high": 200000},
                },
            ],
        }
    ]
}


def citizens_table(n: int = 1500, *, seed: int = 7) -> pa.Table:
    """Skewed districts (one tiny, below any threshold), realistic-looking people; deterministic."""
    rng = random.Random(seed)
    districts = rng.choices(DISTRICTS, weights=DISTRICT_WEIGHTS, k=n)
    return pa.table(
        {
            "person_id": [f"P{i:07d}" for i in range(n)],
            "name": [f"Person {rng.randrange(10**6)}" for _ in range(n)],
            "district": districts,
            "sex": [rng.choice(["F", "M"]) for _ in range(n)],
            "birth_date": pa.array(
                [date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 70)) for _ in range(n)], pa.date32()
            ),
            "income": [round(rng.uniform(0, 150000), 2) for _ in range(n)],
        }
    )


def csv_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def scope_yaml(
    *,
    name: str = SCOPE,
    grantees: tuple[str, ...] = ("operator:alice", "group:analysts"),
    valid_from: str = "2020-01-01",
    valid_until: str = "2099-12-31",
    min_units: int = 10,
    suppression: str = "drop",
    rounding: str = "none",
    purpose: str = "Seasonal influenza burden by district",
) -> str:
    return f"""
scope: {name}
purpose: "{purpose}"
grantees: [{", ".join(grantees)}]
valid: {{from: {valid_from}, until: {valid_until}}}
datasets:
  {DOMAIN}/{DATASET}:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      name: {{use: deny}}
      district: {{use: group}}
      sex: {{use: group}}
      birth_date: {{mask: {{generalize: year}}, use: group}}
      income: {{use: aggregate, functions: [sum, avg, count], bounds: [0, 1000000]}}
disclosure:
  min_units: {min_units}
  suppression: {suppression}
  rounding: {rounding}
  max_rows: 1000
"""


GOOD_SQL = "SELECT district, COUNT(*) AS n, AVG(income) AS avg_income FROM citizens GROUP BY district"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(
    client: TestClient,
    token: str,
    *,
    manifest: Mapping[str, Any] | str = CITIZENS_MANIFEST,
    files: Mapping[str, tuple[str, bytes, str]] | None = None,
    domain: str = DOMAIN,
    dataset: str = DATASET,
    reviewer: str | None = None,
) -> Any:
    """Upload a version (a draft); with ``reviewer`` (a second steward's token), publish it too, so that
    jobs read it. Returns the upload's response."""
    files = (
        files
        if files is not None
        else {"citizens": ("citizens.csv", csv_bytes(citizens_table()), "text/csv")}
    )
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    stored = client.post(
        f"/v1/datasets/{domain}/{dataset}/versions",
        headers=bearer(token),
        data={"manifest": text},
        files=list(files.items()),
    )
    if reviewer is not None and stored.status_code == 201 and stored.json()["version"]["state"] == "draft":
        publish(client, reviewer, stored.json())
    return stored


def publish(client: Any, reviewer: str, stored: Mapping[str, Any]) -> Any:
    """A second steward publishes the draft of an upload's answer (``{"dataset", "version"}``)."""
    version = stored["version"]["version_id"]
    published = client.post(
        f"/v1/datasets/{stored['dataset']}/versions/{version}/publish",
        headers=bearer(reviewer),
        json={"reason": "validation report checked"},
    )
    assert published.status_code == 200, published.text
    return published


@dataclass(frozen=True)
class World:
    """A deployment with one principal per role, a domain, a dataset version and an approved scope."""

    settings: Settings
    client: TestClient
    tokens: Mapping[str, str]  # by principal name
    scope_version: str
    dataset_version: str

    def h(self, name: str) -> dict[str, str]:
        return bearer(self.tokens[name])

    def wait(self, job_id: str, *, who: str = "alice", timeout_s: float = 60.0) -> dict[str, Any]:
        return wait_for_job(self.client, self.h(who), job_id, timeout_s=timeout_s)

    def audit_events(self, event: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 1000}
        if event is not None:
            params["event"] = event
        events: list[dict[str, Any]] = []
        since = None
        while True:
            if since is not None:
                params["since_seq"] = since
            page = self.client.get("/v1/audit/events", headers=self.h("audra"), params=params).json()
            events.extend(page["events"])
            since = page["next_since_seq"]
            if since is None:
                return events


TERMINAL = {"released", "rejected", "failed", "cancelled", "expired", "denied", "withheld"}


def wait_for_job(
    client: Any, headers: Mapping[str, str], job_id: str, *, timeout_s: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout_s}s")
        time.sleep(0.05)


def make_settings(state_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"max_concurrent_jobs": 2, "n_parts": 4, "job_timeout_s": 60, **overrides}
    return Settings(state_dir=state_dir, **values)


@contextmanager
def world(
    state_dir: Path,
    *,
    executor_factory: Any = None,
    release_fn: ReleaseFn = release,
    clock: Clock | None = None,
    span_exporter: Any = None,
    **overrides: Any,
) -> Iterator[World]:
    """Initialise, start the app, and set up every role (admin, stu, cleo, dana, olga, oscar, alice, bob,
    chad, audra; sam and cass are the second stewards of stu's and cleo's domains, who publish drafts).

    ``release_fn``: the release function the services are built with (a test passes a counting wrapper).
    ``clock``: the deployment's clock (a test that moves time passes its own).
    ``span_exporter``: where the gateway's spans go (an in-memory exporter; default: the settings').
    """
    settings = make_settings(state_dir, **overrides)
    admin_token = init_deployment(settings, clock=clock).admin_token
    assert admin_token is not None
    app = create_app(
        settings,
        clock=clock,
        executor_factory=executor_factory,
        release_fn=release_fn,
        span_exporter=span_exporter,
    )
    with TestClient(app, raise_server_exceptions=True) as client:
        tokens = {"admin": admin_token}
        admin = bearer(admin_token)
        for domain in (DOMAIN, OTHER_DOMAIN):
            assert client.post("/v1/domains", headers=admin, json={"name": domain}).status_code == 201
        people = [
            ("stu", "steward", DOMAIN, []),
            ("cleo", "steward", OTHER_DOMAIN, []),
            ("sam", "steward", DOMAIN, []),
            ("cass", "steward", OTHER_DOMAIN, []),
            ("dana", "domain_admin", DOMAIN, []),
            ("olga", "policy_officer", None, []),
            ("oscar", "policy_officer", None, []),
            ("alice", "operator", None, ["analysts"]),
            ("bob", "operator", None, []),
            ("chad", "output_checker", None, []),
            ("audra", "auditor", None, []),
        ]
        for name, role, domain, groups in people:
            answer = client.post(
                "/v1/principals",
                headers=admin,
                json={"name": name, "role": role, "domain": domain, "groups": groups},
            )
            assert answer.status_code == 201, answer.text
            tokens[name] = answer.json()["token"]
        created = client.post(
            "/v1/datasets", headers=bearer(tokens["stu"]), json={"domain": DOMAIN, "name": DATASET}
        )
        assert created.status_code == 201, created.text
        stored = upload(client, tokens["stu"], reviewer=tokens["sam"])
        assert stored.status_code == 201, stored.text
        proposed = client.post(
            "/v1/scopes", headers=bearer(tokens["olga"]), json={"document": scope_yaml(), "format": "yaml"}
        )
        assert proposed.status_code == 201, proposed.text
        version = proposed.json()["version"]["version_id"]
        approved = client.post(
            f"/v1/scopes/{SCOPE}/versions/{version}/approve",
            headers=bearer(tokens["oscar"]),
            json={"reason": "ok"},
        )
        assert approved.status_code == 200, approved.text
        yield World(
            settings=settings,
            client=client,
            tokens=tokens,
            scope_version=version,
            dataset_version=stored.json()["version"]["version_id"],
        )
