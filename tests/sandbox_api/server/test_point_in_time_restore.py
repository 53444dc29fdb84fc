"""PostgreSQL point-in-time restore: WAL archiving, a base backup, recovery to a moment between two jobs.

The procedure is the one docs/operations.md gives, run step by step: archive every WAL segment
(``archive_command``), take a base backup (``pg_basebackup``), then rebuild a cluster from the base
backup and replay the archive up to ``recovery_target_time``. Between the two jobs an auditor keeps
a signed audit head. After the restore the job released before that moment is there, the one released
after it is absent, and the exported chain verifies against the head kept at that moment but not
against the head signed after the later job.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from crypto.audit import AuditEntry, Checkpoint, verify_chain
from crypto.errors import IntegrityError
from sandbox_api.server.app import create_app
from sandbox_api.server.backup.metadata import find_tool
from sandbox_api.server.settings import Settings
from tests.sandbox_api.api_helpers import GOOD_SQL, World, make_settings, world
from tests.sandbox_api.auditing_helpers import release
from tests.sandbox_api.backup_helpers import exported_chain, jobs_in
from tests.sandbox_api.postgres_cluster import SUPERUSER, PostgresCluster, running_cluster

with warnings.catch_warnings():
    # Starlette asks for the `httpx2` fork in its test client; the pinned `httpx` still works fine.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


def _as_postgres(*command: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    done = subprocess.run([*prefix, *command], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _owned_by_postgres(path: Path) -> Path:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        for item in [path, *path.rglob("*")]:
            os.chown(item, entry.pw_uid, entry.pw_gid)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def archiving_cluster() -> Iterator[tuple[PostgresCluster, Path]]:
    """A cluster that archives every finished WAL segment into a folder of its own."""
    with running_cluster() as cluster:
        archive = cluster.folder / "wal-archive"
        archive.mkdir(mode=0o700)
        _owned_by_postgres(archive)
        with cluster.connect() as connection:
            connection.execute("ALTER SYSTEM SET archive_mode = 'on'")
            connection.execute(
                f"ALTER SYSTEM SET archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'"
            )
        # archive_mode takes effect at a restart; pg_ctl keeps the options the cluster was started with.
        cluster.run(
            "pg_ctl",
            "restart",
            "-D",
            str(cluster.data),
            "-w",
            "-m",
            "fast",
            "-l",
            str(cluster.folder / "server.log"),
        )
        yield cluster, archive


def _archive_current_segment(cluster: PostgresCluster, archive: Path) -> None:
    """Close the WAL segment in use and wait until the archiver has copied it."""
    with cluster.connect() as connection:
        row = connection.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    assert row is not None
    segment = archive / str(row[0])
    deadline = time.monotonic() + 30
    while not segment.exists():
        assert time.monotonic() < deadline, f"segment {segment.name} was not archived"
        time.sleep(0.05)


@contextmanager
def _restored_to(cluster: PostgresCluster, base: Path, archive: Path, target: datetime) -> Iterator[int]:
    """A new cluster from the base backup, replayed from the archive up to ``target``: its port while it
    runs; stopped afterwards (its folder goes with the first cluster's)."""
    data = cluster.folder / "restored"
    shutil.copytree(base, data)
    data.chmod(0o700)
    with (data / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
        conf.write(f"restore_command = 'cp {archive}/%f %p'\n")
        conf.write(f"recovery_target_time = '{target.isoformat(sep=' ')}'\n")
        conf.write("recovery_target_action = 'promote'\n")
    (data / "recovery.signal").touch()
    _owned_by_postgres(data)
    port = _free_port()
    # The same settings as the primary (recovery refuses a smaller max_connections).
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {cluster.folder} -c max_connections=300"
    log = cluster.folder / "restored.log"
    try:
        cluster.run("pg_ctl", "start", "-D", str(data), "-w", "-l", str(log), "-o", options)
    except subprocess.CalledProcessError:
        raise AssertionError(f"the restored cluster did not start:\n{log.read_text()[-3000:]}") from None
    restored = PostgresCluster(folder=cluster.folder, port=port, password=cluster.password, _bin=cluster._bin)
    try:
        _wait_for_promotion(restored)
        yield port
    finally:
        restored.run("pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w")


def _wait_for_promotion(restored: PostgresCluster) -> None:
    deadline = time.monotonic() + 60
    while True:
        with restored.connect() as connection:
            row = connection.execute("SELECT pg_is_in_recovery()").fetchone()
        if row is not None and row[0] is False:
            return
        assert time.monotonic() < deadline, "the restored cluster did not finish its recovery"
        time.sleep(0.1)


def _signed_head(api: World) -> Checkpoint:
    answer = api.client.get("/v1/audit/head", headers=api.h("audra"))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return Checkpoint.from_json(json.dumps(body["checkpoint"]))


def _on_the_restored_database(
    settings: Settings, tokens: dict[str, str], *, before: str, after: str
) -> list[AuditEntry]:
    """A gateway on the restored database: the earlier job released, the later one unknown; its chain."""
    with TestClient(create_app(settings)) as client:
        restored = World(
            settings=settings, client=client, tokens=tokens, scope_version="", dataset_version=""
        )
        assert client.get(f"/v1/jobs/{before}", headers=restored.h("alice")).json()["state"] == "released"
        assert client.get(f"/v1/jobs/{after}", headers=restored.h("alice")).status_code == 404
        return exported_chain(restored)


def test_a_point_in_time_restore_keeps_the_job_before_the_moment_and_drops_the_one_after(
    tmp_path: Path, archiving_cluster: tuple[PostgresCluster, Path]
) -> None:
    cluster, archive = archiving_cluster
    url = cluster.new_database()
    with world(tmp_path / "state", database_url=url) as api:
        base = cluster.folder / "base"
        _as_postgres(
            str(find_tool("pg_basebackup")),
            f"--dbname=postgresql://{SUPERUSER}:{cluster.password}@127.0.0.1:{cluster.port}/postgres",
            f"--pgdata={base}",
            "--wal-method=stream",
            "--checkpoint=fast",
        )
        before = release(api)
        head_at_moment = _signed_head(api)
        time.sleep(1.0)  # commit times are compared with the moment: keep clear of both jobs
        moment = datetime.now(UTC)
        time.sleep(1.0)
        after = release(api, GOOD_SQL + " HAVING COUNT(*) > 1")
        head_after = _signed_head(api)
        tokens = dict(api.tokens)
    _archive_current_segment(cluster, archive)

    with _restored_to(cluster, base, archive, moment) as port:
        # The same database on the restored cluster; the state folder (keyring, data) is unchanged.
        restored_url = url.replace(f"@127.0.0.1:{cluster.port}/", f"@127.0.0.1:{port}/")
        assert restored_url != url
        settings = make_settings(tmp_path / "state", database_url=restored_url)
        chain = _on_the_restored_database(settings, tokens, before=before, after=after)
    assert before in jobs_in(chain)
    assert after not in jobs_in(chain)
    # The restored chain continues the head kept at the moment, and cannot pass for the later one.
    verify_chain(chain, checkpoints=[head_at_moment])
    with pytest.raises(IntegrityError, match="seq"):
        verify_chain(chain, checkpoints=[head_after])
