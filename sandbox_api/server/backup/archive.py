"""Write a backup of a deployment, and restore one into an empty deployment.

**Consistency while the gateway runs.** The database is copied first (one snapshot), then the keyring,
then the data files. Everything the snapshot refers to already exists by then and stays: a version's
parts and its sealed data key are written before its row commits, KEKs and signing keys are only ever
added or retired. Whatever was added after the snapshot (a newer keyring entry, a newer version's parts)
is harmless in the backup: no row refers to it. A version shredded in between loses its secret in the
keyring copy too, which is what shredding promises.

**Nothing half-written.** A backup is built in a hidden folder beside ``out`` and renamed into place
at the end. A restore checks every file against the manifest and opens the keyring before it touches
anything, builds the state directory beside the target, loads a PostgreSQL dump in one transaction,
and only then renames the state directory into place; on any failure the partial copies are removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from crypto.errors import CryptoError, IntegrityError
from crypto.keyring import LocalKeyring
from crypto.passphrase import MIN_PASSPHRASE_CHARS, open_with_passphrase, seal_with_passphrase
from sandbox_api.server.backup import metadata
from sandbox_api.server.backup.errors import (
    BackupDamaged,
    BackupError,
    NoDeployment,
    StoreMismatch,
    TargetNotEmpty,
    WeakPassphrase,
    WrongPassphrase,
)
from sandbox_api.server.backup.manifest import MANIFEST_NAME, Manifest, check_file, file_sha256, read_manifest

KEYRING_NAME: Final = "keyring.sealed"
DATA_FOLDER: Final = "data"
_KEYRING_AAD_LABEL: Final = b"data-sandbox/backup/keyring/v1"


@dataclass(frozen=True)
class Deployment:
    """Where a deployment keeps its state: the state directory and the metadata database's URL."""

    state_dir: Path
    database_url: str

    @property
    def keyring_path(self) -> Path:
        return self.state_dir / "keyring.json"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / DATA_FOLDER


@dataclass(frozen=True)
class Summary:
    """What a backup or a restore did; ``head`` is the audit head the backup holds, ``manifest_sha256``
    the hash of its manifest (which binds every file): the two facts its audit event names."""

    store: str
    data_files: int
    total_bytes: int
    head: metadata.ChainHead
    manifest_sha256: str
    created_at: str


def _keyring_aad(manifest: Manifest) -> bytes:
    return _KEYRING_AAD_LABEL + manifest.listing_digest()


@contextmanager
def _staging(final: Path, label: str) -> Iterator[Path]:
    """A private folder beside ``final`` (same file system, so the last step is a rename); removed
    unless the caller renamed it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{final.name}.{label}-", dir=final.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _empty_or_absent(folder: Path) -> bool:
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))


def _place(staged: Path, final: Path) -> None:
    if final.exists():
        final.rmdir()  # empty, checked before; rmdir refuses anything else
    staged.replace(final)


# --- backup ------------------------------------------------------------------------------------------
def create_backup(deployment: Deployment, out: Path, *, passphrase: str) -> Summary:
    """Back ``deployment`` up into the new folder ``out`` (absent or empty)."""
    if not deployment.keyring_path.exists():
        # A deployment on a PKCS#11 token has no keyring file: its keys are backed up with the token's
        # own means (docs/security.md, Hardware key storage), never exported into an archive.
        raise NoDeployment(f"no deployment in {deployment.state_dir}: it has no keyring file")
    if not _empty_or_absent(out):
        raise TargetNotEmpty(f"{out} is not empty: a backup goes into a new folder")
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        # Checked first: a dump of a large database should not run only to be thrown away.
        raise WeakPassphrase(f"a backup passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")
    kind = metadata.store_kind(deployment.database_url)
    with _staging(out, "partial") as staged:
        staged.chmod(0o700)
        dump = staged / metadata.dump_name(kind)
        if kind == "sqlite":
            head = metadata.backup_sqlite(deployment.database_url, dump)
        else:
            head = metadata.backup_postgres(deployment.database_url, dump)
        # After the snapshot: see the module docstring for why this order is consistent.
        keyring_json = deployment.keyring_path.read_bytes()
        files = {dump.name: (dump.stat().st_size, file_sha256(dump))}
        files.update(_copy_data(deployment.data_dir, staged / DATA_FOLDER))
        # The keyring's own entry is not part of what it is sealed to: it is filled in once sealed.
        manifest = Manifest(
            store=kind, created_at=datetime.now(UTC).isoformat(), files=files, keyring=(0, "")
        )
        try:
            sealed = seal_with_passphrase(keyring_json, passphrase, aad=_keyring_aad(manifest))
        except CryptoError as failed:
            raise BackupError(failed.detail) from None
        keyring_file = staged / KEYRING_NAME
        keyring_file.write_bytes(sealed)
        manifest = Manifest(
            store=kind,
            created_at=manifest.created_at,
            files=files,
            keyring=(len(sealed), file_sha256(keyring_file)),
        )
        (staged / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
        manifest_sha256 = file_sha256(staged / MANIFEST_NAME)
        _place(staged, out)
    total = sum(size for size, _ in files.values()) + len(sealed)
    return Summary(
        store=kind,
        data_files=len(files) - 1,
        total_bytes=total,
        head=head,
        manifest_sha256=manifest_sha256,
        created_at=manifest.created_at,
    )


def _copy_data(source: Path, target: Path) -> dict[str, tuple[int, str]]:
    copied: dict[str, tuple[int, str]] = {}
    if not source.exists():
        return copied
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(source)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            shutil.copyfile(path, destination)
        except FileNotFoundError:
            continue  # shredded or replaced since the snapshot: no row of the backup refers to it
        key = (Path(DATA_FOLDER) / relative).as_posix()
        copied[key] = (destination.stat().st_size, file_sha256(destination))
    return copied


# --- restore -----------------------------------------------------------------------------------------
def check_backup(source: Path, *, passphrase: str) -> tuple[Manifest, bytes]:
    """The manifest and the keyring's JSON, once every file matches and the keyring opens."""
    manifest = read_manifest(source)
    for relative, expected in manifest.files.items():
        check_file(source, relative, expected)
    check_file(source, KEYRING_NAME, manifest.keyring)
    listed = set(manifest.files) | {KEYRING_NAME, MANIFEST_NAME}
    if metadata.dump_name(manifest.store) not in manifest.files:
        raise BackupDamaged(f"the backup {source} lists no metadata database")
    extra = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    unlisted = [p for p in extra if p not in listed]
    if unlisted:
        raise BackupDamaged(f"the backup is damaged: {unlisted[0]} is not in its manifest")
    try:
        keyring_json = open_with_passphrase(
            (source / KEYRING_NAME).read_bytes(), passphrase, aad=_keyring_aad(manifest)
        )
    except IntegrityError:
        raise WrongPassphrase(
            "the keyring in the backup does not open: the passphrase is wrong, or the manifest was changed"
        ) from None
    return manifest, keyring_json


def restore_backup(source: Path, deployment: Deployment, *, passphrase: str) -> Summary:
    """Restore the backup in ``source`` into ``deployment``, whose state directory and database must be
    empty. Nothing is changed unless every check passes."""
    manifest, keyring_json = check_backup(source, passphrase=passphrase)
    kind = metadata.store_kind(deployment.database_url)
    if kind != manifest.store:
        raise StoreMismatch(f"the backup holds a {manifest.store} database; this deployment uses {kind}")
    if not _empty_or_absent(deployment.state_dir):
        raise TargetNotEmpty(f"the state directory {deployment.state_dir} is not empty")
    sqlite_target = metadata.check_sqlite_target(deployment.database_url) if kind == "sqlite" else None
    if kind == "postgresql":
        metadata.check_postgres_target(deployment.database_url)
    with _staging(deployment.state_dir, "restoring") as staged:
        staged.chmod(0o700)
        keyring_path = staged / "keyring.json"
        descriptor = os.open(keyring_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(keyring_json)
        try:
            LocalKeyring.open(keyring_path)  # parses and validates: a sealed non-keyring is refused
        except CryptoError as failed:
            raise BackupDamaged(f"the keyring in the backup is not usable: {failed.detail}") from None
        data_files = [p for p in manifest.files if p.startswith(f"{DATA_FOLDER}/")]
        (staged / DATA_FOLDER).mkdir(mode=0o700)
        for relative in data_files:
            destination = staged / relative
            destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(source / relative, destination)
            # The copy is checked too: what is restored is what the manifest lists, even if the
            # backup's folder changed after the checks above.
            check_file(staged, relative, manifest.files[relative])
        dump = source / metadata.dump_name(kind)
        staged_db: Path | None = None
        if sqlite_target is not None:
            staged_db = staged / ".metadata.restoring"
            shutil.copyfile(dump, staged_db)
            staged_db.chmod(0o600)
            check_file(staged, staged_db.name, manifest.files[dump.name])
        else:
            metadata.restore_postgres(deployment.database_url, dump)
        _place(staged, deployment.state_dir)
        if staged_db is not None and sqlite_target is not None:
            (deployment.state_dir / staged_db.name).replace(sqlite_target)
    total = sum(size for size, _ in manifest.files.values())
    return Summary(
        store=kind,
        data_files=len(data_files),
        total_bytes=total,
        head=metadata.read_head(deployment.database_url),
        manifest_sha256=file_sha256(source / MANIFEST_NAME),
        created_at=manifest.created_at,
    )
