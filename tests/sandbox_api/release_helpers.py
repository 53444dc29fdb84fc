"""Helpers for the release tests: a counting release function, disclosure-rule scopes, a households
dataset with an integer column."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from policies import Scope
from sandbox_api.server.services.release import Candidate, Released, Settlement, release
from sandbox_api.server.services.release_facts import ReleaseFacts
from tests.sandbox_api.api_helpers import DOMAIN, World, bearer, csv_bytes, scope_yaml, upload
from tests.sandbox_api.python_job_helpers import approve_scope


@dataclass
class CountingRelease:
    """The real release function, recording every call: what came in and what it released."""

    calls: list[tuple[str, Settlement]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, candidate: Candidate, *, scope: Scope, facts: ReleaseFacts) -> Settlement:
        settled = release(candidate, scope=scope, facts=facts)
        with self.lock:
            self.calls.append((type(candidate).__name__, settled))
        return settled

    def released_hashes(self) -> set[str]:
        with self.lock:
            return {s.result_hash for _, s in self.calls if isinstance(s, Released)}

    def candidates(self) -> set[str]:
        with self.lock:
            return {name for name, _ in self.calls}


def rules_scope_yaml(name: str, *, min_units: int, suppression: str = "drop", rounding: str = "none") -> str:
    """The world's citizens grant with the given disclosure rules."""
    return scope_yaml(
        name=name,
        grantees=("operator:alice",),
        min_units=min_units,
        suppression=suppression,
        rounding=rounding,
        purpose="Disclosure rules at release",
    )


HOUSEHOLDS = "households"
HOUSEHOLDS_SCOPE = "household-sizes"
HOUSEHOLDS_MANIFEST: dict[str, Any] = {
    "tables": [
        {
            "name": "households",
            "unit": "person_id",
            "columns": [
                {"name": "person_id", "type": "VARCHAR", "class": "identifying"},
                {"name": "district", "type": "VARCHAR", "class": "internal"},
                {"name": "children", "type": "INTEGER", "class": "internal"},
            ],
        }
    ]
}


def households_table(n: int = 600) -> pa.Table:
    """Three districts of n/3 people each, 0 to 3 children per person (deterministic)."""
    return pa.table(
        {
            "person_id": [f"H{i:06d}" for i in range(n)],
            "district": [("North", "South", "East")[i % 3] for i in range(n)],
            "children": pa.array([i % 4 for i in range(n)], pa.int32()),
        }
    )


def ensure_households(api: World) -> None:
    """The households dataset and a scope that lets alice sum its integer column."""
    created = api.client.post(
        "/v1/datasets", headers=bearer(api.tokens["stu"]), json={"domain": DOMAIN, "name": HOUSEHOLDS}
    )
    assert created.status_code in (201, 409), created.text
    stored = upload(
        api.client,
        api.tokens["stu"],
        manifest=HOUSEHOLDS_MANIFEST,
        files={"households": ("households.csv", csv_bytes(households_table()), "text/csv")},
        dataset=HOUSEHOLDS,
        reviewer=api.tokens["sam"],
    )
    assert stored.status_code in (200, 201), stored.text
    document = f"""
scope: {HOUSEHOLDS_SCOPE}
purpose: "Children per district"
grantees: [operator:alice]
valid: {{from: 2020-01-01, until: 2099-12-31}}
datasets:
  {DOMAIN}/{HOUSEHOLDS}:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      district: {{use: group}}
      children: {{use: aggregate, functions: [sum, avg, count], bounds: [0, 20]}}
disclosure: {{min_units: 10, max_rows: 1000}}
"""
    approve_scope(api, document, HOUSEHOLDS_SCOPE)
