"""A deployment for the cross-domain service tests: citizens in one domain, benefits in the other, a
scope over both approved, and a probe between the gateway and its executor.

``cross_domain_world`` is ``replay_helpers.replayed_world`` plus the benefits dataset (created, uploaded
and reviewed in ``OTHER_DOMAIN``) and the module's own scope; every job it released replays to a match
when the module is done.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from crypto.keyring import KeyProvider
from executors.base import JobSpec, ResultTable
from executors.errors import ExecutionFailed
from executors.local import LocalExecutor
from sandbox_api.server.settings import Settings
from tests.sandbox_api.api_helpers import OTHER_DOMAIN, World, csv_bytes, upload
from tests.sandbox_api.python_job_helpers import approve_scope
from tests.sandbox_api.replay_helpers import replayed_world

BENEFITS = "benefits"
BENEFITS_MANIFEST = {
    "tables": [
        {
            "name": BENEFITS,
            "unit": "person_id",
            "columns": [
                {"name": "person_id", "type": "VARCHAR", "class": "identifying"},
                {
                    "name": "amount",
                    "type": "DOUBLE",
                    "class": "sensitive",
                    "domain": {"low": 0, "high": 5000},
                },
            ],
        }
    ]
}


def benefits_table(n: int = 2400, *, people: int = 1500, seed: int = 5) -> pa.Table:
    rng = random.Random(seed)
    return pa.table(
        {
            # Some payees are not in the citizens table (P0002000 and up): they must match nothing.
            "person_id": [f"P{rng.randrange(people + 300):07d}" for _ in range(n)],
            "amount": [round(rng.uniform(10, 2000), 2) for _ in range(n)],
        }
    )


@dataclass
class Probe:
    """A test-only probe between the gateway and the executor: every spec a sandbox ran and the result
    it handed back, in pairs (a run that raised is in neither list, so ``zip(specs, results)`` pairs
    them). While ``failing``, every cross-domain round fails (a domain's executor breaking
    mid-protocol)."""

    inner: LocalExecutor
    specs: list[JobSpec] = field(default_factory=list)
    results: list[ResultTable] = field(default_factory=list)
    failing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, spec: JobSpec) -> ResultTable:
        with self.lock:
            if spec.party is not None and self.failing:
                raise ExecutionFailed("a domain's round broke (test)")
        result = self.inner.run(spec)
        with self.lock:
            self.specs.append(spec)
            self.results.append(result)
        return result

    def cancel(self, job_id: str) -> bool:
        return self.inner.cancel(job_id)

    def close(self) -> None:
        self.inner.close()


def probe_executor(keys: KeyProvider, settings: Settings) -> Probe:
    """An executor factory: a ``Probe`` around the local executor."""
    return Probe(LocalExecutor(key_provider=keys, max_workers=2))


@contextmanager
def cross_domain_world(state_dir: Path, scope: str, scope_name: str) -> Iterator[tuple[Probe, World]]:
    """A replayed deployment with citizens (one domain), benefits (the other) and ``scope`` (the YAML
    document of the scope named ``scope_name``) approved; yields the gateway's probe and the world."""
    probes: list[Probe] = []

    def factory(keys: KeyProvider, settings: Settings) -> Probe:
        probes.append(probe_executor(keys, settings))
        return probes[-1]

    with replayed_world(state_dir, executor_factory=factory) as api:
        created = api.client.post(
            "/v1/datasets", headers=api.h("cleo"), json={"domain": OTHER_DOMAIN, "name": BENEFITS}
        )
        assert created.status_code == 201, created.text
        stored = upload(
            api.client,
            api.tokens["cleo"],
            manifest=BENEFITS_MANIFEST,
            files={BENEFITS: ("benefits.csv", csv_bytes(benefits_table()), "text/csv")},
            domain=OTHER_DOMAIN,
            dataset=BENEFITS,
            reviewer=api.tokens["cass"],
        )
        assert stored.status_code == 201, stored.text
        approve_scope(api, scope, scope_name)
        yield probes[0], api
