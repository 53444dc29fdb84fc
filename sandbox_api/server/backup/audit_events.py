"""The audit events of a backup and of a restore: ``deployment.backed_up`` and ``deployment.restored``.

**A backup** is recorded in the live chain once the backup folder is in place, naming the audit head
its snapshot holds (``head_seq``, ``head_hash``) and the hash of its manifest: an auditor can tell
which events a backup covers, and which backup a later restore came from. The event is not in the
backup itself (the snapshot was taken before it); that is what a snapshot is.

**A restore** rolls the chain back to the backup's head: every event after it is gone with the rest of
the database. So the restore is recorded after the restore, in the restored chain, as the event right
after the backup's head (``prev_hash`` is that head's hash), naming the head and the manifest it came
from. Recorded before, the event would be erased by the very restore it records; recorded anywhere
else, the restored chain would show no trace of the jump back. An auditor who kept a signed head later
than the backup's sees a chain that no longer extends it, and this event says why.

Both run in the operator's command (no gateway, no principal): the actor is ``system`` and the
details say which operating-system account ran the command.
"""

from __future__ import annotations

import getpass
from typing import Final

from sandbox_api.clock import SystemClock
from sandbox_api.server.backup.archive import Summary
from sandbox_api.server.bootstrap import open_audit_log, open_keys
from sandbox_api.server.services.audit import SYSTEM_ACTOR
from sandbox_api.server.settings import Settings
from sandbox_api.server.store import migrate
from sandbox_api.server.store.db import open_database

BACKED_UP: Final = "deployment.backed_up"
RESTORED: Final = "deployment.restored"


def _account() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return "unknown"


def _details(summary: Summary) -> dict[str, object]:
    return {
        "store": summary.store,
        "backup_head_seq": summary.head.seq,
        "backup_head_hash": summary.head.hash,
        "backup_created_at": summary.created_at,
        "manifest_sha256": summary.manifest_sha256,
        "data_files": summary.data_files,
        "os_account": _account(),
    }


def _append(settings: Settings, *, event: str, details: dict[str, object], upgrade: bool) -> None:
    clock = SystemClock()
    keys = open_keys(settings, clock=clock)
    db = open_database(settings.resolved_database_url)
    try:
        if upgrade:
            # A backup of an older release: its schema is brought up to this release's before the
            # event is chained into it (the gateway would do the same at its start).
            migrate.upgrade(db)
        audit = open_audit_log(settings, db=db, keys=keys, clock=clock)
        with db.write() as session:
            audit.append(session, event=event, actor=SYSTEM_ACTOR, details=details)
    finally:
        db.dispose()


def record_backup(settings: Settings, summary: Summary) -> None:
    """Chain ``deployment.backed_up`` into the live deployment's log."""
    _append(settings, event=BACKED_UP, details=_details(summary), upgrade=False)


def record_restore(settings: Settings, summary: Summary) -> None:
    """Chain ``deployment.restored`` into the restored log, right after the backup's head."""
    _append(settings, event=RESTORED, details=_details(summary), upgrade=True)
