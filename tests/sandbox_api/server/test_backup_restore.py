"""Restore drills, on SQLite and on PostgreSQL: back a running deployment up, keep working, restore.

What the restore must give back is the deployment as it was at the backup: the audit chain verifies,
the jobs released after the backup are absent, the receipts of the earlier jobs still verify, and
the data of the released versions still decrypts (a new job runs). And a restore that cannot be
trusted (a wrong passphrase, a changed file, an edited manifest, a target in use) restores nothing.
"""

from __future__ import annotations

import json
import shutil
import stat
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from starlette.exceptions import StarletteDeprecationWarning

from crypto.audit import AuditEntry
from sandbox_api.receipt_check import verify_receipt
from sandbox_api.server.app import create_app
from sandbox_api.server.backup.manifest import file_sha256
from tests.sandbox_api.api_helpers import GOOD_SQL, SCOPE, World, make_settings, world
from tests.sandbox_api.auditing_helpers import release, result_of, trusted_keys
from tests.sandbox_api.backup_helpers import exported_chain, jobs_in, passphrase_file, run_cli
from tests.sandbox_api.stores import NewStore, on_both_stores

with warnings.catch_warnings():
    # Starlette asks for the `httpx2` fork in its test client; the pinned `httpx` still works fine.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

store = on_both_stores


@dataclass(frozen=True)
class Drill:
    """A deployment backed up between job ``before`` and job ``after``."""

    backup: Path
    secret: Path
    tokens: dict[str, str]
    before: str
    after: str
    before_result: dict[str, Any]
    trusted_before: dict[str, Any]
    new_store: NewStore
    chain: list[AuditEntry]  # the live chain at the end of the drill, after the backup's event


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory, store: NewStore) -> Drill:
    folder = tmp_path_factory.mktemp("drill")
    secret = passphrase_file(folder)
    url = store()
    with world(folder / "state", database_url=url) as api:
        before = release(api)
        before_result = result_of(api, before)
        backed_up = run_cli(
            "backup",
            "--out",
            str(folder / "backup"),
            state_dir=folder / "state",
            database_url=url,
            secret=secret,
        )
        assert backed_up.exit_code == 0, backed_up.output
        after = release(api, GOOD_SQL + " HAVING COUNT(*) > 1")
        chain = exported_chain(api)
        return Drill(
            backup=folder / "backup",
            secret=secret,
            tokens=dict(api.tokens),
            before=before,
            after=after,
            before_result=before_result,
            trusted_before=trusted_keys(api),
            new_store=store,
            chain=chain,
        )


@pytest.fixture
def restored(drill: Drill, tmp_path: Path) -> Iterator[World]:
    url = drill.new_store()
    answer = run_cli(
        "restore",
        "--from",
        str(drill.backup),
        state_dir=tmp_path / "state",
        database_url=url,
        secret=drill.secret,
    )
    assert answer.exit_code == 0, answer.output
    settings = make_settings(tmp_path / "state", database_url=url)
    with TestClient(create_app(settings)) as client:
        yield World(
            settings=settings, client=client, tokens=drill.tokens, scope_version="", dataset_version=""
        )


def test_the_backup_holds_a_manifest_a_sealed_keyring_and_no_readable_key(drill: Drill) -> None:
    manifest = json.loads((drill.backup / "manifest.json").read_text())
    assert {"keyring", "files", "store"} <= set(manifest)
    assert any(path.startswith("data/") for path in manifest["files"])
    assert stat.S_IMODE(drill.backup.stat().st_mode) == 0o700  # private, like the state folder
    sealed = (drill.backup / "keyring.sealed").read_bytes()
    assert b"signing_keys" not in sealed
    assert b"data-sandbox-keyring" not in sealed


def test_a_restore_gives_back_the_deployment_as_it_was_at_the_backup(drill: Drill, restored: World) -> None:
    api = restored
    state = api.settings.state_dir
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "keyring.json").stat().st_mode) == 0o600
    if api.settings.database_url is None:
        assert stat.S_IMODE((state / "metadata.db").stat().st_mode) == 0o600
    # The job released after the backup is absent; the one before it is there, released.
    assert api.client.get(f"/v1/jobs/{drill.after}", headers=api.h("alice")).status_code == 404
    assert api.client.get(f"/v1/jobs/{drill.before}", headers=api.h("alice")).json()["state"] == "released"
    # The audit chain verifies and knows nothing of the later job.
    chain = exported_chain(api)
    assert drill.before in jobs_in(chain)
    assert drill.after not in jobs_in(chain)
    # The earlier job's receipt verifies, against the keys trusted before the backup and those served now.
    result = result_of(api, drill.before)
    assert result["receipt"] == drill.before_result["receipt"]
    for keys in (drill.trusted_before, trusted_keys(api)):
        assert verify_receipt(result["receipt"], keys, result=result).result_checked
    # The released version's data still decrypts: a new job runs to release, with the same answer.
    again = release(api)
    assert result_of(api, again)["rows"] == drill.before_result["rows"]


def _one(chain: list[AuditEntry], event: str) -> AuditEntry:
    found = [entry for entry in chain if entry.event == event]
    assert len(found) == 1, [entry.event for entry in chain]
    return found[0]


def test_a_backup_is_an_audit_event_naming_the_head_its_snapshot_holds(drill: Drill) -> None:
    backed_up = _one(drill.chain, "deployment.backed_up")
    details = backed_up.details
    # The head it names is an event of the live chain, earlier than the backup's own event ...
    named = drill.chain[details["backup_head_seq"]]
    assert named.hash == details["backup_head_hash"]
    assert named.seq < backed_up.seq
    # ... the last one the backup holds: the first job's release is in it, the later job's is not.
    covered = drill.chain[: named.seq + 1]
    assert drill.before in jobs_in(covered)
    assert drill.after not in jobs_in(covered)
    assert details["manifest_sha256"] == file_sha256(drill.backup / "manifest.json")
    assert details["store"] == json.loads((drill.backup / "manifest.json").read_text())["store"]


def test_a_restore_is_recorded_in_the_restored_chain_right_after_the_backups_head(
    drill: Drill, restored: World
) -> None:
    backed_up = _one(drill.chain, "deployment.backed_up").details
    chain = exported_chain(restored)  # verifies link by link
    restore = _one(chain, "deployment.restored")
    # The event directly follows the head the backup holds: the chain rolled back to it, then this.
    assert restore.seq == backed_up["backup_head_seq"] + 1
    assert restore.prev_hash == backed_up["backup_head_hash"]
    assert chain[restore.seq - 1].hash == backed_up["backup_head_hash"]
    assert restore.details["backup_head_hash"] == backed_up["backup_head_hash"]
    assert restore.details["manifest_sha256"] == backed_up["manifest_sha256"]
    # The live chain's events after the backup (the later job, the backup's own event) are not there.
    assert "deployment.backed_up" not in {entry.event for entry in chain}
    assert drill.after not in jobs_in(chain)


def _refused(tmp_path: Path, backup: Path, secret: Path, message: str, *, url: str | None) -> None:
    """A restore into a new state folder and the store ``url`` fails with ``message``, changing nothing."""
    state = tmp_path / "state"
    answer = run_cli("restore", "--from", str(backup), state_dir=state, database_url=url, secret=secret)
    assert answer.exit_code == 1
    assert message in answer.output
    assert "Nothing was restored" in answer.output
    # Nothing half-restored: no state directory, no leftover staging folder, an empty database.
    assert not state.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".state")] == []
    if url is None:
        return  # SQLite: the database file lives in the state directory, which does not exist
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert inspect(connection).get_table_names() == []
    finally:
        engine.dispose()


def _copy(drill: Drill, tmp_path: Path) -> Path:
    copy = tmp_path / "backup-copy"
    shutil.copytree(drill.backup, copy)
    return copy


def test_a_wrong_passphrase_restores_nothing(drill: Drill, tmp_path: Path) -> None:
    wrong = passphrase_file(tmp_path, "not the operators passphrase")
    message = "not-authenticated: the keyring in the backup does not open"
    _refused(tmp_path, drill.backup, wrong, message, url=drill.new_store())


def test_a_changed_data_file_restores_nothing(drill: Drill, tmp_path: Path) -> None:
    copy = _copy(drill, tmp_path)
    part = next(p for p in sorted((copy / "data").rglob("*")) if p.is_file())
    blob = bytearray(part.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    part.write_bytes(bytes(blob))
    changed = part.relative_to(copy).as_posix()
    _refused(
        tmp_path,
        copy,
        drill.secret,
        f"{changed} does not match its hash in the manifest",
        url=drill.new_store(),
    )


def test_a_file_slipped_into_the_backup_restores_nothing(drill: Drill, tmp_path: Path) -> None:
    copy = _copy(drill, tmp_path)
    (copy / "data" / "extra.parquet").write_bytes(b"not from the deployment")
    message = "data/extra.parquet is not in its manifest"
    _refused(tmp_path, copy, drill.secret, message, url=drill.new_store())


def test_a_manifest_edited_to_match_a_changed_database_restores_nothing(drill: Drill, tmp_path: Path) -> None:
    # The attack a hash list alone would let through: change a file, then write its new hash in.
    copy = _copy(drill, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    dump = next(name for name in manifest["files"] if name.startswith("metadata."))
    (copy / dump).write_bytes((copy / dump).read_bytes() + b"\0")
    manifest["files"][dump] = {"bytes": (copy / dump).stat().st_size, "sha256": file_sha256(copy / dump)}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    _refused(
        tmp_path,
        copy,
        drill.secret,
        "the passphrase is wrong, or the manifest was changed",
        url=drill.new_store(),
    )


def test_a_restore_into_a_state_directory_in_use_is_refused(drill: Drill, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "keyring.json").write_text("{}")
    answer = run_cli(
        "restore",
        "--from",
        str(drill.backup),
        state_dir=state,
        database_url=drill.new_store(),
        secret=drill.secret,
    )
    assert answer.exit_code == 1
    assert "conflict: the state directory" in answer.output
    assert (state / "keyring.json").read_text() == "{}"


def test_a_backup_of_one_store_is_not_restored_into_the_other(
    drill: Drill, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    backed_up_sqlite = drill.new_store() is None
    other = request.getfixturevalue("postgres").new_database() if backed_up_sqlite else None
    kinds = ("sqlite", "postgresql") if backed_up_sqlite else ("postgresql", "sqlite")
    message = "the backup holds a {} database; this deployment uses {}".format(*kinds)
    _refused(tmp_path, drill.backup, drill.secret, message, url=other)


def _job_states(database_url: str) -> dict[str, str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return {
                str(row[0]): str(row[1]) for row in connection.execute(text("SELECT id, state FROM jobs"))
            }
    finally:
        engine.dispose()


def test_a_backup_taken_while_jobs_run_restores_a_deployment_that_finishes_them(
    tmp_path: Path, store: NewStore
) -> None:
    secret = passphrase_file(tmp_path)
    url = store()
    with world(tmp_path / "state", database_url=url) as api:
        submitted = []
        for index in range(6):
            sql = f"{GOOD_SQL} HAVING COUNT(*) > {index}"
            answer = api.client.post("/v1/jobs", headers=api.h("alice"), json={"scope": SCOPE, "sql": sql})
            assert answer.status_code == 202, answer.text
            submitted.append(answer.json()["job_id"])
        backed_up = run_cli(
            "backup",
            "--out",
            str(tmp_path / "backup"),
            state_dir=tmp_path / "state",
            database_url=url,
            secret=secret,
        )
        assert backed_up.exit_code == 0, backed_up.output
        tokens = dict(api.tokens)
    restored_url = store()
    answer = run_cli(
        "restore",
        "--from",
        str(tmp_path / "backup"),
        state_dir=tmp_path / "restored",
        database_url=restored_url,
        secret=secret,
    )
    assert answer.exit_code == 0, answer.output
    settings = make_settings(tmp_path / "restored", database_url=restored_url)
    # The snapshot caught work in flight: jobs that were queued or running at the backup.
    at_backup = _job_states(settings.resolved_database_url)
    assert set(at_backup) == set(submitted)
    assert any(state in ("queued", "running") for state in at_backup.values())
    with TestClient(create_app(settings)) as client:
        restored = World(
            settings=settings, client=client, tokens=tokens, scope_version="", dataset_version=""
        )
        final = {job: restored.wait(job)["state"] for job in submitted}
        keys = trusted_keys(restored)
        for job in submitted:
            result = result_of(restored, job)
            assert verify_receipt(result["receipt"], keys, result=result).result_checked
        chain = exported_chain(restored)
    assert final == dict.fromkeys(submitted, "released")
    released = Counter(entry.details["job"] for entry in chain if entry.event == "job.released")
    assert released == Counter(dict.fromkeys(submitted, 1))  # each once, in one chain
