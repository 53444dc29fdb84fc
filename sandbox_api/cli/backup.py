"""``sandbox backup`` and ``sandbox restore``: local operations on a state directory and its database.

No gateway is involved: a backup reads the database and the state directory while the gateways keep
running; a restore writes into an empty state directory and an empty database before any gateway
starts on them. The keyring travels sealed under a passphrase the operator keeps apart from the
backup: read from ``--passphrase-file`` (for scheduled backups) or asked for on the terminal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sandbox_api.cli.common import fail, note
from sandbox_api.cli.deployment import StateDir, settings_for

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="File whose first line is the backup passphrase (default: ask on the terminal).",
        exists=True,
        dir_okay=False,
    ),
]


def _passphrase(path: Path | None, *, confirm: bool) -> str:
    if path is not None:
        lines = path.read_text(encoding="utf-8").splitlines()
        return lines[0] if lines else ""
    answer: str = typer.prompt("Backup passphrase", hide_input=True, confirmation_prompt=confirm)
    return answer


def backup(
    out: Annotated[
        Path, typer.Option("--out", help="New folder to write the backup into (absent or empty).")
    ],
    state_dir: StateDir = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Back up the deployment online: metadata database, encrypted data, sealed keyring, manifest."""
    from sandbox_api.server.backup.archive import Deployment, create_backup
    from sandbox_api.server.backup.audit_events import record_backup
    from sandbox_api.server.backup.errors import BackupError

    settings = settings_for(state_dir)
    passphrase = _passphrase(passphrase_file, confirm=True)
    deployment = Deployment(state_dir=settings.state_dir, database_url=settings.resolved_database_url)
    try:
        summary = create_backup(deployment, out, passphrase=passphrase)
    except BackupError as failed:
        raise fail(f"{failed.code}: {failed.detail}") from None
    # After the backup is in place: the event names the head the backup holds (audit_events.py).
    record_backup(settings, summary)
    note(f"Backed up the {summary.store} metadata database and {summary.data_files} data files to {out}.")
    note("Keep the passphrase apart from the backup: without it the keyring, and so the data, stay sealed.")


def restore(
    source: Annotated[Path, typer.Option("--from", help="The backup folder.", exists=True, file_okay=False)],
    state_dir: StateDir = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Restore a backup into an empty state directory and an empty metadata database."""
    from sandbox_api.server.backup.archive import Deployment, restore_backup
    from sandbox_api.server.backup.audit_events import record_restore
    from sandbox_api.server.backup.errors import BackupError

    settings = settings_for(state_dir)
    passphrase = _passphrase(passphrase_file, confirm=False)
    deployment = Deployment(state_dir=settings.state_dir, database_url=settings.resolved_database_url)
    try:
        summary = restore_backup(source, deployment, passphrase=passphrase)
    except BackupError as failed:
        raise fail(f"{failed.code}: {failed.detail}\nNothing was restored.") from None
    # After the restore, in the restored chain: before it, the restore would erase its own record.
    record_restore(settings, summary)
    note(
        f"Restored the {summary.store} metadata database and {summary.data_files} data files into "
        f"{settings.state_dir}, and recorded the restore in its audit chain after the backup's head "
        f"(event {summary.head.seq + 1}). Start the gateway."
    )
