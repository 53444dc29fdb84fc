"""The Ray backend on a real local cluster: the shared contract, domain placement, node-local keys,
exact two-phase aggregation, faults, cancellation and orphans.

One cluster for the whole module (starting one costs seconds): a head node serving ``health-bureau``
with that domain's keyring, and a second node serving ``tax-office`` with another keyring. Fault tests
add and remove nodes of a third domain. Ray's temporary files and its authentication token live in a
private temporary directory; nothing is written under the home directory.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from ray.cluster_utils import Cluster

from crypto.keyring import LocalKeyring
from executors.base import JobSpec, Limits, TableInput
from executors.errors import (
    DataUnavailable,
    ExecutionCancelled,
    ExecutionTimeout,
    PartIntegrityError,
)
from executors.local import LocalExecutor
from executors.ray_cluster import NODE_KEYRING_ENV, KeyringFile
from executors.ray_executor import RayExecutor
from executors.tracing import current_trace_context
from policies import prepare, result_hash
from policies.context import compile_context
from policies.dp.examples import dp_catalog, dp_scope
from policies.dp.noise import release_dp
from policies.examples import example_catalog, example_scope
from policies.pipeline import prepare_with
from tests.executors.executors_contract import AGGREGATE, ENDLESS, ExecutorContract, run_in_thread, spec
from tests.executors.executors_fixtures import StoredVersion, store_version, visits_table

pytestmark = pytest.mark.slow

HEALTH, TAX, FAULT = "health-bureau", "tax-office", "fault-lab"
OBJECT_STORE = 80 * 2**20
# About four seconds of one core: long enough to be caught running, short enough to finish on a retry.
SLOW = "SELECT COUNT(*) AS n, SUM(hash(i) % 7) AS s FROM range(400000000) t(i)"


@dataclass(frozen=True)
class RayCluster:
    cluster: Cluster
    health_node: str
    tax_node: str
    keyrings: dict[str, Path]
    root: Path


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    # A short path: Ray's Unix socket names must fit in 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="sbxray-", dir="/tmp"))
    keyrings = {}
    for domain in (HEALTH, TAX, FAULT):
        path = root / f"{domain}.keyring.json"
        LocalKeyring.open(path, create=True).ensure_domain(domain)
        keyrings[domain] = path
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_TMPDIR", str(root))
        # Ray reads its authentication mode once, when it is imported (here: at collection), so the
        # test cluster states it explicitly; left unset, a local start would write a token file
        # under the home directory. Deployments use token mode (docs/ray.md).
        env.setenv("RAY_AUTH_MODE", "disabled")
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "resources": {f"domain:{HEALTH}": 1},
                "object_store_memory": OBJECT_STORE,
                "include_dashboard": False,
                "env_vars": {NODE_KEYRING_ENV: str(keyrings[HEALTH])},
            },
        )
        tax = cluster.add_node(
            num_cpus=1,
            resources={f"domain:{TAX}": 1},
            object_store_memory=OBJECT_STORE,
            env_vars={NODE_KEYRING_ENV: str(keyrings[TAX])},
        )
        try:
            yield RayCluster(
                cluster=cluster,
                health_node=cluster.head_node.node_id,
                tax_node=tax.node_id,
                keyrings=keyrings,
                root=root,
            )
        finally:
            cluster.shutdown()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_executor(ray_cluster: RayCluster) -> Iterator[RayExecutor]:
    executor = RayExecutor(address=ray_cluster.cluster.address)
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def keyring(ray_cluster: RayCluster) -> LocalKeyring:
    """The health-bureau node's keyring: the contract's datasets are written with it."""
    return LocalKeyring.open(ray_cluster.keyrings[HEALTH])


@pytest.fixture(scope="module")
def visits(data_root: Path, keyring: LocalKeyring) -> StoredVersion:
    stored = store_version(
        data_root, keyring, {"visits": visits_table()}, units={"visits": "person_id"}, n_parts=4
    )
    # With the unit known, the Ray backend splits aggregates into one task per part.
    inputs = {name: replace(table, unit="person_id") for name, table in stored.inputs.items()}
    return replace(stored, inputs=inputs)


class TestRayExecutorContract(ExecutorContract):
    @pytest.fixture
    def executor(self, ray_executor: RayExecutor) -> RayExecutor:
        return ray_executor


# -- placement and keys ----------------------------------------------------------------------------


def test_jobs_run_only_on_nodes_of_their_domain(
    ray_executor: RayExecutor, ray_cluster: RayCluster, visits: StoredVersion, data_root: Path
) -> None:
    tax_keyring = LocalKeyring.open(ray_cluster.keyrings[TAX])
    returns = store_version(
        data_root,
        tax_keyring,
        {"visits": visits_table(400)},
        units={"visits": "person_id"},
        n_parts=3,
        domain=TAX,
        dataset="returns",
    )
    for i in range(3):
        health = ray_executor.run(spec(visits, AGGREGATE, job_id=f"placed-health-{i}"))
        tax = ray_executor.run(spec(returns, AGGREGATE, job_id=f"placed-tax-{i}"))
        assert health.engine["ray_nodes"] == ray_cluster.health_node
        assert tax.engine["ray_nodes"] == ray_cluster.tax_node
        assert health.timings["tasks"] == 5  # four parts and the merge, all on the health node


def test_the_gateway_side_span_continues_the_specs_trace_and_readiness_says_ready(
    ray_executor: RayExecutor, visits: StoredVersion
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    assert ray_executor.readiness() is None
    with tracer.start_as_current_span("job.run") as run:
        job = replace(spec(visits, AGGREGATE, job_id="traced-ray"), trace_context=current_trace_context())
    ray_executor.trace_with(tracer)
    try:
        ray_executor.run(job)
    finally:
        ray_executor.trace_with(trace.NoOpTracer())
    (executed,) = [s for s in exporter.get_finished_spans() if s.name == "executor.run"]
    assert executed.parent is not None
    assert executed.parent.span_id == run.get_span_context().span_id
    assert (executed.attributes or {})["sandbox.executor"] == "ray"


def test_ray_tasks_run_behind_the_same_walls_as_local_jobs(
    ray_executor: RayExecutor, visits: StoredVersion
) -> None:
    """Each task forks the local backend's sandbox (strict by default): a result means every wall held."""
    result = ray_executor.run(spec(visits, AGGREGATE, job_id="walled-on-ray"))
    assert result.engine["isolation"] == "strict"
    walls = result.engine["walls"].split(",")
    assert {"network", "mount", "no_new_privs", "seccomp"} <= set(walls)
    assert ("uid" in walls) is (os.geteuid() == 0)
    assert result.engine["network"] == "isolated"


def test_a_node_cannot_unwrap_another_domains_keys(ray_executor: RayExecutor, visits: StoredVersion) -> None:
    # Claim the health data belongs to the tax office: Ray places the job on the tax node, whose
    # keyring does not hold the health key, so the data stays unreadable.
    lying = replace(visits.inputs["visits"], domain=TAX)
    job = JobSpec(job_id="wrong-node", sql=AGGREGATE, tables=(lying,), keyed_hash_key=None, limits=Limits())
    with pytest.raises((DataUnavailable, PartIntegrityError)):
        ray_executor.run(job)


def test_an_explicit_keyring_recipe_is_opened_on_the_node(
    ray_cluster: RayCluster, visits: StoredVersion
) -> None:
    wrong = RayExecutor(key_sources={HEALTH: KeyringFile(str(ray_cluster.keyrings[TAX]))})
    with pytest.raises((DataUnavailable, PartIntegrityError)):
        wrong.run(spec(visits, AGGREGATE, job_id="wrong-recipe"))
    right = RayExecutor(key_sources={HEALTH: KeyringFile(str(ray_cluster.keyrings[HEALTH]))})
    assert right.run(spec(visits, AGGREGATE, job_id="right-recipe")).row_count == 5


def test_a_job_waits_for_its_domain_then_fails_with_the_reason(
    ray_cluster: RayCluster, visits: StoredVersion
) -> None:
    executor = RayExecutor(timeout_s=2.0)
    orphan = replace(visits.inputs["visits"], domain="nowhere")
    job = JobSpec(job_id="no-node", sql=AGGREGATE, tables=(orphan,), keyed_hash_key=None, limits=Limits())
    thread, outcome = run_in_thread(executor, job)
    deadline = time.monotonic() + 5
    while (status := executor.status("no-node")) is None or status.state != "waiting":
        assert time.monotonic() < deadline, "the job never reported that it waits"
        time.sleep(0.02)
    assert "'nowhere'" in status.detail
    thread.join(timeout=20)
    assert isinstance(outcome[0], ExecutionTimeout)
    assert "no such node is alive" in outcome[0].detail


# -- exact two-phase aggregation -------------------------------------------------------------------

POLICY_QUERIES = (
    "SELECT district, COUNT(*) AS n, SUM(income) AS s, AVG(income) AS a FROM citizens GROUP BY district",
    "SELECT sex, COUNT(DISTINCT person_id) AS p FROM citizens GROUP BY sex ORDER BY p DESC",
    "SELECT COUNT(*) AS n, SUM(income) AS s FROM citizens",
    "SELECT district, COUNT(*) FILTER (WHERE sex = 'F') AS f FROM citizens GROUP BY 1",
    "SELECT a.district, COUNT(*) AS n FROM citizens a JOIN citizens b ON a.person_id = b.person_id "
    "GROUP BY 1",
    "SELECT birth_date, AVG(income) AS a FROM citizens GROUP BY 1 HAVING COUNT(*) > 30 ORDER BY 1",
)
# Already in the engine's form (the example scope allows no MIN or MAX): run as written.
RAW_QUERIES = (
    "SELECT district, MIN(income) AS lo, MAX(birth_date) AS last, COUNT(DISTINCT person_id) AS _sbx_units "
    "FROM citizens GROUP BY district",
)


def citizens_table(n: int = 3_000) -> pa.Table:
    persons = n // 3
    districts = ["North", "South", "East", "West", "Military Zone"]
    return pa.table(
        {
            "person_id": pa.array([i % persons for i in range(n)], pa.int64()),
            "national_id": [f"N{i % persons:06d}" for i in range(n)],
            "name": [f"Person {i % persons}" for i in range(n)],
            "phone": [f"555-{(i * 7919) % 10_000:04d}" for i in range(n)],
            "birth_date": [date(1950, 1, 1) + timedelta(days=(i % persons) * 37 % 20_000) for i in range(n)],
            "sex": ["F" if (i % persons) % 3 else "M" for i in range(n)],
            "district": [districts[(i * 13) % 5] for i in range(n)],
            "income": pa.array(
                [None if i % 17 == 0 else (i * 104_729) % 1_200_000 - 50_000 for i in range(n)], pa.int64()
            ),
            "diagnosis": [f"J{(i * 31) % 12:02d}" for i in range(n)],
        }
    )


@pytest.fixture(scope="module")
def citizens(data_root: Path, keyring: LocalKeyring) -> dict[int, TableInput]:
    versions = {}
    for n_parts in (1, 3, 16):
        stored = store_version(
            data_root / f"parts-{n_parts}",
            keyring,
            {"citizens": citizens_table()},
            units={"citizens": "person_id"},
            n_parts=n_parts,
            dataset="citizens",
        )
        versions[n_parts] = replace(stored.inputs["citizens"], unit="person_id")
    return versions


@pytest.mark.parametrize(
    "query",
    [*POLICY_QUERIES, *RAW_QUERIES],
    ids=[f"policy-{i}" for i in range(len(POLICY_QUERIES))] + [f"raw-{i}" for i in range(len(RAW_QUERIES))],
)
def test_two_phase_result_is_identical_to_one_process(
    ray_executor: RayExecutor, keyring: LocalKeyring, citizens: dict[int, TableInput], query: str
) -> None:
    rewritten = query if query in RAW_QUERIES else prepare(query, example_scope(), example_catalog()).sql
    limits = Limits(timeout_s=60, memory_mb=512, cpu_s=60, threads=1)
    local = LocalExecutor(key_provider=keyring, max_workers=1)
    try:
        expected = local.run(JobSpec("one-process", rewritten, (citizens[16],), None, limits)).to_pandas()
    finally:
        local.close()
    assert len(expected) > 1 or "GROUP BY" not in rewritten
    for n_parts, table in citizens.items():
        job = JobSpec(f"split-{n_parts}-{abs(hash(query))}", rewritten, (table,), None, limits)
        result = ray_executor.run(job)
        assert result_hash(result.to_pandas()) == result_hash(expected), f"{n_parts} parts"
        assert result.timings["tasks"] == (1 if n_parts == 1 else n_parts + 1)


def test_a_split_float_sum_carries_its_limbs_through_the_cluster(
    ray_executor: RayExecutor, data_root: Path, keyring: LocalKeyring
) -> None:
    # Magnitudes that plain addition loses (1e16 + 1 - 1e16): each part's DOUBLE sum would drop the
    # small values, the parts' limbs (HUGEINTs, decimal128 on the wire) keep them.
    n = 2_400
    x = [(1e16, 1.0, -1e16, 0.125)[i % 4] * (1 + i % 3) for i in range(n)]
    stored = store_version(
        data_root / "float-limbs",
        keyring,
        {"t": pa.table({"u": pa.array([i % 600 for i in range(n)], pa.int64()), "x": x})},
        units={"t": "u"},
        n_parts=4,
        dataset="float-limbs",
    )
    table = replace(stored.inputs["t"], unit="u")
    limits = Limits(timeout_s=60, memory_mb=512, cpu_s=60, threads=1)
    sql = "SELECT SUM(x) AS s, AVG(x) AS a FROM t"
    result = ray_executor.run(JobSpec("float-limbs", sql, (table,), None, limits))
    assert result.timings["tasks"] == 5  # four parts and the merge
    row = result.to_pandas().iloc[0]
    assert row["s"] == math.fsum(x)
    assert row["a"] == math.fsum(x) / n


# -- faults, cancellation, orphans -----------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, process group) of ``pid``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[2])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ray_sandboxes() -> dict[int, int]:
    """Sandbox processes under Ray workers: sandbox pid to the pid of the Ray worker above it.

    A sandbox leads its own process group and is a child of a fork server whose parent is a Ray
    worker (whose process title starts with ``ray::``)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None or stat[1] != pid or "forkserver" not in _cmdline(pid):
            continue
        server = stat[0]
        server_stat = _stat(server)
        if server_stat is None or "forkserver" not in _cmdline(server):
            continue
        if _cmdline(server_stat[0]).startswith("ray::"):
            found[pid] = server_stat[0]
    return found


def wait_for_sandbox(before: set[int]) -> tuple[int, int]:
    deadline = time.monotonic() + 30
    while not (new := set(ray_sandboxes()) - before):
        assert time.monotonic() < deadline, "no sandbox process appeared under a Ray worker"
        time.sleep(0.02)
    pid = new.pop()
    return pid, ray_sandboxes().get(pid, 0)


def wait_gone(pids: set[int]) -> None:
    deadline = time.monotonic() + 15
    while alive := {p for p in pids if _stat(p) is not None}:
        assert time.monotonic() < deadline, f"left behind: {alive}"
        time.sleep(0.05)


def test_cancel_kills_the_sandbox_and_leaves_no_orphans(
    ray_executor: RayExecutor, visits: StoredVersion
) -> None:
    before = set(ray_sandboxes())
    thread, outcome = run_in_thread(ray_executor, spec(visits, ENDLESS, job_id="orphan-check"))
    sandbox, _ = wait_for_sandbox(before)
    assert ray_executor.cancel("orphan-check")
    thread.join(timeout=30)
    assert isinstance(outcome[0], ExecutionCancelled)
    wait_gone({sandbox})


def test_a_killed_worker_is_retried_and_the_result_is_whole(
    ray_executor: RayExecutor, visits: StoredVersion
) -> None:
    limits = Limits(timeout_s=60, memory_mb=512, cpu_s=60, threads=1)
    before = set(ray_sandboxes())
    thread, outcome = run_in_thread(ray_executor, spec(visits, SLOW, job_id="killed-worker", limits=limits))
    sandbox, worker = wait_for_sandbox(before)
    os.kill(worker, signal.SIGKILL)
    thread.join(timeout=90)
    wait_gone({sandbox, worker})
    result = outcome[0]
    assert not isinstance(result, BaseException), result
    assert result.to_arrow().to_pylist()[0]["n"] == 400_000_000


def test_a_removed_node_is_replaced_by_another_of_its_domain_then_the_job_fails(
    ray_cluster: RayCluster, data_root: Path
) -> None:
    cluster = ray_cluster.cluster
    node_args: dict[str, Any] = {
        "num_cpus": 1,
        "resources": {f"domain:{FAULT}": 1},
        "object_store_memory": OBJECT_STORE,
        "env_vars": {NODE_KEYRING_ENV: str(ray_cluster.keyrings[FAULT])},
    }
    nodes = [cluster.add_node(**node_args) for _ in range(2)]
    fault_keyring = LocalKeyring.open(ray_cluster.keyrings[FAULT])
    lab = store_version(
        data_root,
        fault_keyring,
        {"visits": visits_table(200)},
        units={"visits": "person_id"},
        n_parts=2,
        domain=FAULT,
        dataset="lab",
    )
    executor = RayExecutor(timeout_s=90)
    limits = Limits(timeout_s=60, memory_mb=512, cpu_s=60, threads=1)
    before = set(ray_sandboxes())
    thread, outcome = run_in_thread(executor, spec(lab, SLOW, job_id="node-lost", limits=limits))
    _, worker = wait_for_sandbox(before)
    (running,) = [n for n in nodes if _descends_from(worker, n.all_processes["raylet"][0].process.pid)]
    cluster.remove_node(running)
    thread.join(timeout=90)
    result = outcome[0]
    assert not isinstance(result, BaseException), result
    (survivor,) = [n for n in nodes if n is not running]
    assert result.engine["ray_nodes"] == survivor.node_id

    cluster.remove_node(survivor)
    short = RayExecutor(timeout_s=2.0)
    with pytest.raises(ExecutionTimeout) as raised:
        short.run(spec(lab, AGGREGATE, job_id="node-gone"))
    assert f"'{FAULT}'" in raised.value.detail


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        stat = _stat(pid)
        if stat is None:
            return False
        pid = stat[0]
    return False


def test_concurrent_split_jobs_do_not_mix(ray_executor: RayExecutor, visits: StoredVersion) -> None:
    sqls = [AGGREGATE, AGGREGATE.replace("SUM(cost)", "MAX(cost)")]
    expected = [
        ray_executor.run(spec(visits, sql, job_id=f"alone-{i}")).to_arrow() for i, sql in enumerate(sqls)
    ]
    results: list[object] = [None, None]

    def target(i: int) -> None:
        results[i] = ray_executor.run(spec(visits, sqls[i], job_id=f"together-{i}")).to_arrow()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == expected


# -- differential privacy on the split path --------------------------------------------------------

DP_QUERIES = (
    # Public group keys: the groups and rows bounds share one sample; no distinct-unit count.
    "SELECT district, COUNT(*) AS n, SUM(income) AS s, AVG(income) AS a FROM citizens GROUP BY district",
    # Keys from the data: the distinct-unit count that partition selection reads (each group's units
    # counted by the flag of their first kept row), summed over parts.
    "SELECT sex, COUNT(*) AS n, COUNT(DISTINCT person_id) AS p FROM citizens GROUP BY sex",
    # One global row: the rows bound alone.
    "SELECT COUNT(*) AS n, SUM(income) AS s FROM citizens",
)


@pytest.mark.parametrize("query", DP_QUERIES, ids=[f"dp-{i}" for i in range(len(DP_QUERIES))])
def test_a_dp_job_on_ray_has_the_same_pre_noise_result_and_release_as_one_process(
    ray_executor: RayExecutor, keyring: LocalKeyring, citizens: dict[int, TableInput], query: str
) -> None:
    # The per-unit sample partitions by the unit, and every unit lives in exactly one part: each part
    # keeps the same rows of its units as one process does, so the exact values, and the release drawn
    # from them (sealed noise added), are the same on every backend and every number of parts.
    ctx = compile_context(dp_scope(), dp_catalog())
    prepared = prepare_with(query, ctx)
    assert prepared.dp_plan is not None
    assert ctx.disclosure.dp is not None
    limits = Limits(timeout_s=60, memory_mb=512, cpu_s=60, threads=1)
    # Bound only where the statement uses it, as the service does (the engine refuses an unused one):
    # an ungrouped aggregate over one table clamps per-person contributions and needs no key.
    key = {"sbx_dp_key": "a key sealed per scope lineage"} if "$sbx_dp_key" in prepared.sql else None
    local = LocalExecutor(key_provider=keyring, max_workers=1)
    try:
        expected = local.run(
            JobSpec("dp-one-process", prepared.sql, (citizens[16],), None, limits, parameters=key)
        ).to_pandas()
    finally:
        local.close()

    def exact_release(frame: pd.DataFrame) -> pd.DataFrame:
        # A stand-in for the draw that adds nothing (the real noise is sealed, not drawn again).
        plan, dp = prepared.dp_plan, ctx.disclosure.dp
        assert plan is not None
        assert dp is not None
        return release_dp(frame, plan, dp, sample=lambda _measurement, data: data).table

    for n_parts, table in citizens.items():
        job = JobSpec(
            f"dp-split-{n_parts}-{abs(hash(query))}", prepared.sql, (table,), None, limits, parameters=key
        )
        result = ray_executor.run(job)
        assert result.timings["tasks"] == (1 if n_parts == 1 else n_parts + 1), "the DP job was not split"
        assert result_hash(result.to_pandas()) == result_hash(expected), f"{n_parts} parts"
        pd.testing.assert_frame_equal(exact_release(result.to_pandas()), exact_release(expected))


# -- cross-domain jobs: each domain's rounds on that domain's nodes ----------------------------------

XD_SQL = (
    "SELECT c.district AS district, COUNT(DISTINCT v.person_id) AS patients, COUNT(*) AS visits, "
    "SUM(v.cost) AS total_cost FROM visits AS v JOIN citizens AS c ON v.person_id = c.person_id "
    "GROUP BY c.district"
)


class _NodeProbe:
    """The Ray executor, recording on which node each round ran."""

    def __init__(self, inner: RayExecutor) -> None:
        self.inner = inner
        self.placed: list[tuple[str, str]] = []  # (the round's domain, the nodes it ran on)

    def run(self, job: JobSpec) -> Any:
        result = self.inner.run(job)
        self.placed.append((job.tables[0].domain, result.engine["ray_nodes"]))
        return result

    def cancel(self, job_id: str) -> bool:
        return self.inner.cancel(job_id)

    def close(self) -> None:
        pass


def test_a_cross_domain_jobs_rounds_run_on_their_own_domains_nodes_and_match_the_plain_join(
    ray_executor: RayExecutor, ray_cluster: RayCluster, data_root: Path
) -> None:
    from executors.crossdomain.job import CrossDomainJob, DomainPartSpec
    from executors.crossdomain.placed import run_cross_domain
    from executors.crossdomain.split import split
    from policies.cohorts.sketch import SketchRequest
    from tests.executors.crossdomain_world import K, citizens, plain_join, visits

    left, right = citizens(), visits()
    # Each domain's data is wrapped under its own node's keyring: the other node cannot open it.
    stored_visits = store_version(
        data_root / "xd-health",
        LocalKeyring.open(ray_cluster.keyrings[HEALTH]),
        {"visits": pa.Table.from_pandas(right, preserve_index=False)},
        units={"visits": "person_id"},
        n_parts=2,
        domain=HEALTH,
        dataset="visits",
    )
    stored_citizens = store_version(
        data_root / "xd-tax",
        LocalKeyring.open(ray_cluster.keyrings[TAX]),
        {"citizens": pa.Table.from_pandas(left, preserve_index=False)},
        units={"citizens": "person_id"},
        n_parts=2,
        domain=TAX,
        dataset="citizens",
    )
    query = split(
        XD_SQL,
        datasets={"visits": f"{HEALTH}/visits", "citizens": f"{TAX}/citizens"},
        domains={f"{HEALTH}/visits": HEALTH, f"{TAX}/citizens": TAX},
        one_row={f"{TAX}/citizens"},  # a register: one row per person, as its catalog says
    )
    job = JobSpec(
        job_id="xd-on-ray",
        sql=XD_SQL,
        tables=(stored_visits.inputs["visits"], stored_citizens.inputs["citizens"]),
        keyed_hash_key=None,
        # Under the released-cohort ledger: the unblind rounds run on each domain's nodes too.
        cohorts=SketchRequest(secret=bytes(32), power_sums=K + 1),
        cross_domain=CrossDomainJob(
            plan=query.plan,
            left=DomainPartSpec(HEALTH, f"{HEALTH}/visits", query.left.sql, ("visits",)),
            right=DomainPartSpec(TAX, f"{TAX}/citizens", query.right.sql, ("citizens",)),
            min_units=K,
            columns=("district", "patients", "visits", "total_cost"),
            lineage="xd-on-ray",
        ),
    )
    probe = _NodeProbe(ray_executor)
    result = run_cross_domain(probe, job).to_pandas()

    oracle = plain_join(left, right)
    oracle = oracle[oracle["patients"] >= K].sort_values("district").reset_index(drop=True)
    assert result["district"].tolist() == oracle["district"].tolist()
    assert result["patients"].tolist() == oracle["patients"].tolist()
    assert result["visits"].tolist() == oracle["visits"].tolist()
    assert result["total_cost"].round(2).tolist() == oracle["total_cost"].round(2).tolist()
    # Every round ran on a node of its own domain, and both domains took part.
    nodes = {HEALTH: ray_cluster.health_node, TAX: ray_cluster.tax_node}
    assert {domain for domain, _ in probe.placed} == {HEALTH, TAX}
    assert all(ran_on == nodes[domain] for domain, ran_on in probe.placed), probe.placed
    assert len(probe.placed) == 11  # hello, blind, re-blind and two unblind steps on each side; one answer
    assert result["_sbx_sketch"].notna().all()
