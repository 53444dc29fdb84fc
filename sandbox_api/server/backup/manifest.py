"""The manifest of a backup: every file's path, size and SHA-256, and what kind of store it holds.

The keyring in a backup is sealed with the manifest's listing of the other files as associated data
(``listing_digest``), so a manifest edited to match a changed file no longer opens the keyring.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sandbox_api.server.backup.errors import BackupDamaged

FORMAT: Final = "data-sandbox-backup"
VERSION: Final = 1
MANIFEST_NAME: Final = "manifest.json"
_CHUNK: Final = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """``files``: relative path (POSIX) to ``(bytes, sha256)``; ``keyring``: the sealed keyring's entry."""

    store: str  # "sqlite" or "postgresql"
    created_at: str
    files: Mapping[str, tuple[int, str]]
    keyring: tuple[int, str]

    def listing_digest(self) -> bytes:
        """What the sealed keyring is bound to: the format, the store and every other file's hash."""
        listing = {"format": FORMAT, "version": VERSION, "store": self.store, "files": dict(self.files)}
        return hashlib.sha256(json.dumps(listing, sort_keys=True).encode("utf-8")).digest()

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "store": self.store,
            "created_at": self.created_at,
            "files": {
                path: {"bytes": size, "sha256": sha} for path, (size, sha) in sorted(self.files.items())
            },
            "keyring": {"bytes": self.keyring[0], "sha256": self.keyring[1]},
        }
        return json.dumps(doc, indent=2) + "\n"


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_NAME
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupDamaged(f"{folder} is not a backup: it has no {MANIFEST_NAME}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BackupDamaged(f"the manifest {path} is not valid JSON: the backup is damaged") from None
    try:
        if doc["format"] != FORMAT or doc["version"] != VERSION:
            raise BackupDamaged(f"{path} is not a version-{VERSION} Data Sandbox backup manifest")
        files = {str(p): (int(e["bytes"]), str(e["sha256"])) for p, e in dict(doc["files"]).items()}
        keyring = (int(doc["keyring"]["bytes"]), str(doc["keyring"]["sha256"]))
        store = str(doc["store"])
        created_at = str(doc["created_at"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BackupDamaged(
            f"the manifest {path} has an unexpected structure: the backup is damaged"
        ) from None
    for relative in files:
        # A manifest names files inside its own folder only: no absolute paths, no way up.
        parts = Path(relative).parts
        if Path(relative).is_absolute() or ".." in parts or not parts:
            raise BackupDamaged(f"the manifest {path} names a file outside the backup: {relative!r}")
    if store not in ("sqlite", "postgresql"):
        raise BackupDamaged(f"the manifest {path} names an unknown store {store!r}")
    return Manifest(store=store, created_at=created_at, files=files, keyring=keyring)


def check_file(folder: Path, relative: str, expected: tuple[int, str]) -> None:
    """Refuse a file that is missing, or whose size or hash differs from the manifest."""
    path = folder / relative
    if not path.is_file():
        raise BackupDamaged(f"the backup is damaged: {relative} is missing")
    if path.stat().st_size != expected[0] or file_sha256(path) != expected[1]:
        raise BackupDamaged(
            f"the backup is damaged: {relative} does not match its hash in the manifest "
            "(changed or truncated)"
        )
