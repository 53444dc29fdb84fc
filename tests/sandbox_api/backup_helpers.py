"""Helpers for the backup tests: the ``sandbox backup``/``restore`` commands, a deployment's audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from crypto.audit import AuditEntry, verify_chain
from sandbox_api.cli.main import app
from tests.sandbox_api.api_helpers import World

PASSPHRASE = "operators keep this one apart"

cli = CliRunner()


def passphrase_file(folder: Path, passphrase: str = PASSPHRASE) -> Path:
    path = folder / f"passphrase-{len(passphrase)}-{abs(hash(passphrase))}.txt"
    path.write_text(passphrase + "\n", encoding="utf-8")
    return path


def run_cli(command: str, *args: str, state_dir: Path, database_url: str | None, secret: Path) -> Result:
    """``sandbox COMMAND ARGS --state-dir … --passphrase-file …`` with the database from the environment,
    as an operator's shell would run it."""
    env = {"SANDBOX_DATABASE_URL": database_url} if database_url is not None else {}
    return cli.invoke(
        app,
        [command, *args, "--state-dir", str(state_dir), "--passphrase-file", str(secret)],
        env=env,
    )


def exported_chain(api: World) -> list[AuditEntry]:
    """The whole audit chain as an auditor exports it, verified link by link."""
    answer = api.client.get("/v1/audit/export", headers=api.h("audra"))
    assert answer.status_code == 200, answer.text
    entries = [AuditEntry.from_json(line) for line in answer.text.splitlines()]
    verify_chain(entries)
    return entries


def jobs_in(entries: list[AuditEntry]) -> set[Any]:
    return {entry.details.get("job") for entry in entries} - {None}
