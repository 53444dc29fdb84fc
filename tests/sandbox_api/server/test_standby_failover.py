"""Failover to a streaming-replication standby: kill the primary under load, promote, repoint gateways.

The procedure is the one docs/operations.md gives, step by step: a replication role and its pg_hba
entry on the primary, a standby cloned with ``pg_basebackup -R`` on a port of its own, synchronous
replication (``synchronous_standby_names``) so that no commit is acknowledged before the standby has
it. Two gateways take jobs from operators; the primary is killed (``pg_ctl stop -m immediate``, as a
power cut would), the standby promoted (``pg_ctl promote``), and the gateways restarted with the
standby's URL. Then: every job a client saw released is still released (RPO 0), no job is released
twice, every accepted job finishes, the audit chain verifies. RPO and RTO are measured and printed
(``pytest -s``) for docs/operations.md.
"""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from crypto.audit import AuditEntry, verify_chain
from sandbox_api.server.backup.metadata import find_tool
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, bearer, world
from tests.sandbox_api.live_gateway import free_port, serve_gateway
from tests.sandbox_api.postgres_cluster import PostgresCluster, give_to_owner, running_cluster

STANDBY = "standby1"  # the standby's cluster_name: the name synchronous_standby_names waits for
REPLICATOR = "replicator"
SETTINGS = {"queue_limit": 1000, "quota_queued_jobs": 1000, "quota_jobs_per_hour": 5000}
OPERATORS = 6
RELEASED_BEFORE_KILL = 12


@dataclass
class Load:
    """What the operators saw: jobs accepted (202) and jobs they saw released, before the kill."""

    accepted: set[str] = field(default_factory=set)
    released: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)


def _operator(gateway: httpx.Client, headers: dict[str, str], load: Load, index: int) -> None:
    """Submit a job, poll it to the end, repeat; stop at the first failure (the primary is gone)."""
    round_ = 0
    while not load.stop.is_set():
        round_ += 1
        sql = f"{GOOD_SQL} HAVING COUNT(*) > {(index * 1000 + round_) % 5}"
        try:
            answer = gateway.post("/v1/jobs", headers=headers, json={"scope": SCOPE, "sql": sql})
            if answer.status_code != 202:
                return
            job = answer.json()["job_id"]
            with load.lock:
                load.accepted.add(job)
            while not load.stop.is_set():
                view = gateway.get(f"/v1/jobs/{job}", headers=headers)
                if view.status_code != 200:
                    return
                state = view.json()["state"]
                if state == "released":
                    with load.lock:
                        load.released.add(job)
                    break
                if state not in ("queued", "running", "checking"):
                    break
                time.sleep(0.02)
        except Exception:
            return


def _wait(condition_sql: str, cluster: PostgresCluster, *, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with cluster.connect() as connection:
            row = connection.execute(condition_sql).fetchone()
        if row is not None and row[0]:
            return
        assert time.monotonic() < deadline, f"timed out waiting for: {condition_sql}"
        time.sleep(0.1)


def _run(cluster: PostgresCluster, *args: str) -> None:
    """A PostgreSQL tool as the cluster's owner; its own message when it fails."""
    try:
        cluster.run(*args)
    except subprocess.CalledProcessError as failed:
        raise AssertionError(f"{args[0]} failed: {failed.stderr}") from None


@contextmanager
def standby_of(primary: PostgresCluster) -> Iterator[PostgresCluster]:
    """A streaming-replication standby of ``primary``, synchronous, on its own port (docs/operations.md)."""
    password = secrets.token_urlsafe(24)
    with primary.connect() as connection:
        # The password is generated here, not input; a role name cannot be a bound parameter.
        connection.execute(f"CREATE ROLE {REPLICATOR} WITH REPLICATION LOGIN PASSWORD '{password}'")
    with (primary.data / "pg_hba.conf").open("a", encoding="utf-8") as hba:
        hba.write(f"host replication {REPLICATOR} 127.0.0.1/32 scram-sha-256\n")
    with primary.connect() as connection:
        connection.execute("SELECT pg_reload_conf()")
    data = primary.folder / "standby"
    passfile = primary.folder / "standby.pgpass"
    passfile.write_text(f"127.0.0.1:{primary.port}:*:{REPLICATOR}:{password}\n", encoding="utf-8")
    passfile.chmod(0o600)
    give_to_owner(passfile)
    conninfo = f"host=127.0.0.1 port={primary.port} user={REPLICATOR} passfile={passfile}"
    _run(
        primary,
        str(find_tool("pg_basebackup")),
        f"--dbname={conninfo}",
        f"--pgdata={data}",
        "--wal-method=stream",
        "--checkpoint=fast",
        "--write-recovery-conf",  # -R: standby.signal and primary_conninfo
    )
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {primary.folder}"
    options += f" -c max_connections=300 -c cluster_name={STANDBY} -c fsync=off"
    primary.run(
        "pg_ctl", "start", "-D", str(data), "-w", "-l", str(primary.folder / "standby.log"), "-o", options
    )
    standby = PostgresCluster(folder=primary.folder, port=port, password=primary.password, _bin=primary._bin)
    standby_data = data
    try:
        # Synchronous only once the standby streams: before, every commit on the primary would wait.
        _wait(f"SELECT count(*) = 1 FROM pg_stat_replication WHERE application_name = '{STANDBY}'", primary)
        with primary.connect() as connection:
            connection.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY}'")
            connection.execute("ALTER SYSTEM SET synchronous_commit = 'on'")
            connection.execute("SELECT pg_reload_conf()")
        _wait(
            f"SELECT sync_state = 'sync' FROM pg_stat_replication WHERE application_name = '{STANDBY}'",
            primary,
        )
        yield standby
    finally:
        primary.run("pg_ctl", "stop", "-D", str(standby_data), "-m", "immediate", "-w")


def _environment(database_url: str) -> dict[str, str]:
    """The gateways' settings: the database, and quotas that let six operators keep them busy."""
    return {"SANDBOX_DATABASE_URL": database_url} | {
        f"SANDBOX_{name.upper()}": str(value) for name, value in SETTINGS.items()
    }


def _finished(gateway: httpx.Client, headers: dict[str, str], jobs: set[str]) -> dict[str, str]:
    """Every job to its end (on the promoted standby); its final state."""
    final: dict[str, str] = {}
    deadline = time.monotonic() + 300
    while pending := jobs - set(final):
        for job in sorted(pending):
            state = gateway.get(f"/v1/jobs/{job}", headers=headers).json()["state"]
            if state not in ("queued", "running", "checking"):
                final[job] = state
        assert time.monotonic() < deadline, f"{len(pending)} jobs did not finish after the failover"
        time.sleep(0.1)
    return final


@pytest.fixture
def primary() -> Iterator[PostgresCluster]:
    with running_cluster() as cluster:
        yield cluster


def test_a_promoted_standby_loses_no_released_job_and_releases_none_twice(
    tmp_path: Path, primary: PostgresCluster
) -> None:
    url = primary.new_database()
    state = tmp_path / "state"
    with world(state, database_url=url, **SETTINGS) as api:
        tokens = dict(api.tokens)  # provisioned: datasets, scopes, principals; its gateways come next
    alice, audra = bearer(tokens["alice"]), bearer(tokens["audra"])
    load = Load()
    with standby_of(primary) as standby:
        booting = time.monotonic()
        with (
            serve_gateway(state, settings=_environment(url)) as one,
            serve_gateway(state, settings=_environment(url)) as two,
            httpx.Client(base_url=one, timeout=30) as first,
            httpx.Client(base_url=two, timeout=30) as second,
        ):
            boot_s = time.monotonic() - booting
            gateways = (first, second)
            operators = [
                threading.Thread(target=_operator, args=(gateways[i % 2], alice, load, i), daemon=True)
                for i in range(OPERATORS)
            ]
            for thread in operators:
                thread.start()
            deadline = time.monotonic() + 300
            while len(load.released) < RELEASED_BEFORE_KILL:
                assert time.monotonic() < deadline, "the gateways released too few jobs under load"
                time.sleep(0.05)
            # The power cut: no shutdown checkpoint, no goodbye to the standby or the clients.
            primary.stop("immediate")
            killed_at = time.monotonic()
            load.stop.set()
            for thread in operators:
                thread.join(timeout=60)
            with load.lock:
                accepted, acknowledged = set(load.accepted), set(load.released)
        # The old gateways are stopped (their database is gone); promote, then restart them on it.
        stopped_at = time.monotonic()
        _run(primary, "pg_ctl", "promote", "-D", str(primary.folder / "standby"), "-w")
        promoted_at = time.monotonic()
        moved = url.replace(f"@127.0.0.1:{primary.port}/", f"@127.0.0.1:{standby.port}/")
        assert moved != url
        with (
            serve_gateway(state, settings=_environment(moved)) as one,
            serve_gateway(state, settings=_environment(moved)) as two,
            httpx.Client(base_url=one, timeout=30) as first,
            httpx.Client(base_url=two, timeout=30) as second,
        ):
            started_at = time.monotonic()
            probe = first.post("/v1/jobs", headers=alice, json={"scope": SCOPE, "sql": GOOD_SQL})
            assert probe.status_code == 202, probe.text
            probe_job = probe.json()["job_id"]
            final = _finished(second, alice, {probe_job})
            rto_s = time.monotonic() - killed_at  # kill to the first job released on the standby
            final |= _finished(first, alice, accepted)
            export = second.get("/v1/audit/export", headers=audra).text

    lost = {job for job in acknowledged if final.get(job) != "released"}
    print(
        f"\nfailover: {len(accepted)} jobs accepted, {len(acknowledged)} seen released before the kill; "
        f"RPO {len(lost)} released jobs lost; RTO {rto_s:.2f} s (kill to first job released on the standby)"
        f": old gateways stopped "
        f"{stopped_at - killed_at:.2f} s, promotion {promoted_at - stopped_at:.2f} s, new gateways up "
        f"{started_at - promoted_at:.2f} s (on the primary: {boot_s:.2f} s), "
        f"first job {killed_at + rto_s - started_at:.2f} s"
    )
    assert lost == set()  # RPO 0: synchronous replication acknowledged nothing the standby lacked
    assert final[probe_job] == "released"
    assert Counter(final.values()) == Counter({"released": len(accepted) + 1})  # every accepted job ends
    entries = [AuditEntry.from_json(line) for line in export.splitlines()]
    verify_chain(entries)
    released = Counter(e.details["job"] for e in entries if e.event == "job.released")
    assert released == Counter(dict.fromkeys(accepted | {probe_job}, 1))  # none released twice


def multi_host_url(url: str, *clusters: PostgresCluster) -> str:
    """``url`` naming every cluster as a host, writable one first found (libpq's
    ``target_session_attrs=read-write``): a gateway on it follows a promotion without a restart."""
    base, database = url.rsplit("/", 1)
    hosts = "&".join(f"host=127.0.0.1:{cluster.port}" for cluster in clusters)
    credentials = base.split("@", 1)[0]
    return f"{credentials}@/{database}?{hosts}&target_session_attrs=read-write"


@dataclass
class Answers:
    """Every answer the operators got that was not a success, by status; and the 503s' details."""

    statuses: Counter[int] = field(default_factory=Counter)
    unavailable: list[httpx.Response] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, answer: httpx.Response) -> None:
        with self.lock:
            self.statuses[answer.status_code] += 1
            if answer.status_code == 503:
                self.unavailable.append(answer)


def _steady_operator(
    gateway: httpx.Client, headers: dict[str, str], load: Load, answers: Answers, index: int
) -> None:
    """Submit, poll to the end, repeat, through the outage: a 503 is waited out (``Retry-After``), not
    given up on; a job whose poll was refused is polled again."""
    round_ = 0
    while not load.stop.is_set():
        round_ += 1
        sql = f"{GOOD_SQL} HAVING COUNT(*) > {(index * 1000 + round_) % 5}"
        try:
            answer = gateway.post("/v1/jobs", headers=headers, json={"scope": SCOPE, "sql": sql})
        except httpx.HTTPError:
            continue
        if answer.status_code != 202:
            answers.note(answer)
            time.sleep(min(float(answer.headers.get("Retry-After", "1")), 2.0) / 4)
            continue
        job = answer.json()["job_id"]
        with load.lock:
            load.accepted.add(job)
        while not load.stop.is_set():
            view = gateway.get(f"/v1/jobs/{job}", headers=headers)
            if view.status_code != 200:
                answers.note(view)
                time.sleep(0.1)
                continue
            state = view.json()["state"]
            if state == "released":
                with load.lock:
                    load.released.add(job)
                break
            if state not in ("queued", "running", "checking"):
                break
            time.sleep(0.02)


def test_gateways_on_a_multi_host_url_keep_serving_through_a_promotion_without_a_restart(
    tmp_path: Path, primary: PostgresCluster
) -> None:
    """The same two gateways before and after: the primary dies, requests meanwhile get 503 with
    Retry-After (never a 500), the standby is promoted and the gateways' next connections find it.
    Every job seen released stays released, every accepted job ends released, none twice."""
    url = primary.new_database()
    state = tmp_path / "state"
    with world(state, database_url=url, **SETTINGS) as api:
        tokens = dict(api.tokens)
    alice, audra = bearer(tokens["alice"]), bearer(tokens["audra"])
    load, answers = Load(), Answers()
    with standby_of(primary) as standby:
        both = multi_host_url(url, primary, standby)
        with (
            serve_gateway(state, settings=_environment(both), log_to=tmp_path / "one.log") as one,
            serve_gateway(state, settings=_environment(both), log_to=tmp_path / "two.log") as two,
            httpx.Client(base_url=one, timeout=60) as first,
            httpx.Client(base_url=two, timeout=60) as second,
        ):
            gateways = (first, second)
            operators = [
                threading.Thread(
                    target=_steady_operator, args=(gateways[i % 2], alice, load, answers, i), daemon=True
                )
                for i in range(OPERATORS)
            ]
            for thread in operators:
                thread.start()
            deadline = time.monotonic() + 300
            while len(load.released) < RELEASED_BEFORE_KILL:
                assert time.monotonic() < deadline, "the gateways released too few jobs under load"
                time.sleep(0.05)
            with load.lock:
                before_kill = set(load.released)
            primary.stop("immediate")
            killed_at = time.monotonic()
            time.sleep(1.0)  # the operators meet the dead primary (503s) before there is a new one
            _run(primary, "pg_ctl", "promote", "-D", str(primary.folder / "standby"), "-w")
            promoted_at = time.monotonic()
            # Recovered: a job submitted after the promotion is released, through the same gateways.
            with load.lock:
                seen_at_promotion = set(load.released)
            while True:
                with load.lock:
                    after = load.released - seen_at_promotion
                if after:
                    break
                assert time.monotonic() < deadline, "no job was released after the promotion"
                time.sleep(0.05)
            rto_s = time.monotonic() - killed_at
            time.sleep(2.0)  # some more load on the promoted standby
            load.stop.set()
            for thread in operators:
                thread.join(timeout=120)
            with load.lock:
                accepted, acknowledged = set(load.accepted), set(load.released)
            final = _finished(first, alice, accepted)
            export = second.get("/v1/audit/export", headers=audra).text

    print(
        f"\nfailover without restart: {len(accepted)} jobs accepted, {len(before_kill)} released before "
        f"the kill; RTO {rto_s:.2f} s (kill to a job released on the promoted standby, promotion "
        f"{promoted_at - killed_at:.2f} s after the kill); answers other than success: "
        f"{dict(answers.statuses)}"
    )
    assert set(answers.statuses) <= {503}  # never a 500: the outage is said as such
    assert answers.unavailable, "no request met the outage: the test did not exercise it"
    for refused in answers.unavailable:
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "database-unavailable"
        assert int(refused.headers["Retry-After"]) > 0
    assert {job for job in acknowledged if final.get(job) != "released"} == set()  # RPO 0
    assert Counter(final.values()) == Counter({"released": len(accepted)})  # every accepted job ends
    entries = [AuditEntry.from_json(line) for line in export.splitlines()]
    verify_chain(entries)
    released = Counter(e.details["job"] for e in entries if e.event == "job.released")
    assert set(released.values()) == {1}  # none released twice
    assert accepted <= set(released)
