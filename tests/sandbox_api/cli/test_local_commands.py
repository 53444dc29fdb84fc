"""The `sandbox` command line, run in-process with typer's CliRunner on temporary state directories."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crypto.audit import AuditEntry, chain
from sandbox_api.cli.deployment import open_principal_service
from sandbox_api.cli.main import app
from sandbox_api.errors import NotAuthenticated
from sandbox_api.server.settings import Settings

runner = CliRunner()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def _init(state_dir: Path) -> str:
    result = runner.invoke(app, ["init", "--state-dir", str(state_dir)])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def test_init_creates_a_private_keyring_and_prints_an_admin_token_once(state_dir: Path) -> None:
    token = _init(state_dir)
    assert token.startswith("sbx_")
    mode = stat.S_IMODE((state_dir / "keyring.json").stat().st_mode)
    assert mode & 0o077 == 0
    again = runner.invoke(app, ["init", "--state-dir", str(state_dir)])
    assert again.exit_code == 0
    assert "already initialised" in again.output
    assert "sbx_" not in again.output


def test_token_create_works_offline_and_the_token_authenticates(state_dir: Path) -> None:
    _init(state_dir)
    result = runner.invoke(
        app,
        [
            "token",
            "create",
            "--role",
            "operator",
            "--name",
            "alice",
            "--group",
            "cdc",
            "--state-dir",
            str(state_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    with open_principal_service(Settings(state_dir=state_dir)) as principals:
        who = principals.authenticate(token)
        assert (who.name, who.role.value, who.groups) == ("alice", "operator", ("cdc",))
        with pytest.raises(NotAuthenticated):
            principals.authenticate(token[:-2] + "xx")


def test_token_create_issues_another_token_for_an_existing_principal(state_dir: Path) -> None:
    _init(state_dir)
    args = ["token", "create", "--role", "auditor", "--name", "audrey", "--state-dir", str(state_dir)]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == second.exit_code == 0
    assert first.output.strip() != second.output.strip()


def test_token_create_refuses_to_change_a_principals_role(state_dir: Path) -> None:
    _init(state_dir)
    runner.invoke(
        app, ["token", "create", "--role", "auditor", "--name", "audrey", "--state-dir", str(state_dir)]
    )
    result = runner.invoke(
        app, ["token", "create", "--role", "admin", "--name", "audrey", "--state-dir", str(state_dir)]
    )
    assert result.exit_code == 1
    assert "conflict" in result.output
    assert "sbx_" not in result.output


def test_token_create_needs_an_initialised_deployment(state_dir: Path) -> None:
    result = runner.invoke(
        app, ["token", "create", "--role", "admin", "--name", "root", "--state-dir", str(state_dir)]
    )
    assert result.exit_code == 1
    assert "sandbox init" in result.output


def test_token_create_rejects_an_unknown_role(state_dir: Path) -> None:
    _init(state_dir)
    result = runner.invoke(
        app, ["token", "create", "--role", "god", "--name", "x", "--state-dir", str(state_dir)]
    )
    assert result.exit_code == 2


def test_a_steward_token_needs_an_existing_domain(state_dir: Path) -> None:
    _init(state_dir)
    result = runner.invoke(
        app,
        [
            "token",
            "create",
            "--role",
            "steward",
            "--name",
            "carol",
            "--domain",
            "nowhere",
            "--state-dir",
            str(state_dir),
        ],
    )
    assert result.exit_code == 1
    assert "not-found" in result.output


# --- audit verify --------------------------------------------------------------------------------


def _chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(n):
        prev = entries[-1] if entries else None
        entries.append(
            chain(
                prev,
                at=f"2026-01-01T00:00:{i:02d}Z",
                event="job.released",
                actor="alice",
                details={"job": f"j{i}"},
            )
        )
    return entries


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_audit_verify_accepts_an_intact_export(tmp_path: Path) -> None:
    entries = _chain(5)
    export = _write(tmp_path / "audit.jsonl", [e.to_json() for e in entries])
    result = runner.invoke(app, ["audit", "verify", str(export)])
    assert result.exit_code == 0, result.output
    assert "OK: 5 events" in result.output
    assert entries[-1].hash in result.output


def _edited(lines: list[str]) -> list[str]:
    body = json.loads(lines[2])
    body["details"]["job"] = "someone-else"
    return [*lines[:2], json.dumps(body), *lines[3:]]


@pytest.mark.parametrize(
    ("tamper", "says"),
    [
        (_edited, "seq 2: event edited"),
        (lambda lines: lines[:2] + lines[3:], "deleted"),
        (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], "reordered"),
        (lambda lines: [*lines[:3], lines[2], *lines[3:]], "inserted"),
        (lambda lines: [*lines[:2], "{not json", *lines[2:]], "not a well-formed event"),
    ],
    ids=["edited", "deleted", "reordered", "inserted", "garbage"],
)
def test_audit_verify_detects_tampering(tmp_path: Path, tamper: object, says: str) -> None:
    assert callable(tamper)
    lines = [e.to_json() for e in _chain(6)]
    export = _write(tmp_path / "audit.jsonl", tamper(lines))
    result = runner.invoke(app, ["audit", "verify", str(export)])
    assert result.exit_code == 1
    assert "BROKEN" in result.output
    assert says in result.output


def test_audit_verify_detects_a_cut_off_tail_against_a_kept_head(tmp_path: Path) -> None:
    entries = _chain(6)
    export = _write(tmp_path / "audit.jsonl", [e.to_json() for e in entries[:4]])
    assert runner.invoke(app, ["audit", "verify", str(export)]).exit_code == 0
    result = runner.invoke(app, ["audit", "verify", str(export), "--head", entries[-1].hash])
    assert result.exit_code == 1
    assert "truncated" in result.output


def test_audit_verify_refuses_a_binary_file(tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    export.write_bytes(b"\xff\xfe\x00garbage")
    result = runner.invoke(app, ["audit", "verify", str(export)])
    assert result.exit_code == 1
    assert "BROKEN" in result.output


def test_audit_verify_without_a_kept_head_says_what_it_could_not_check(tmp_path: Path) -> None:
    """Cutting the last events (head included) off an export still verifies: the chain that is left is
    intact. Without --expected-head the command must say so, not only "OK"."""
    entries = _chain(6)
    export = _write(tmp_path / "audit.jsonl", [e.to_json() for e in entries[:4]])
    result = runner.invoke(app, ["audit", "verify", str(export)])
    assert result.exit_code == 0
    assert "OK: 4 events" in result.stdout
    assert "not verified" in result.stderr
    assert "--expected-head" in result.stderr


def test_init_with_the_gm_profile_makes_an_sm2_key_and_the_profile_cannot_change_afterwards(
    state_dir: Path,
) -> None:
    made = runner.invoke(app, ["init", "--state-dir", str(state_dir), "--crypto-profile", "gm"])
    assert made.exit_code == 0, made.output
    keyring = json.loads((state_dir / "keyring.json").read_text())
    assert [k["algorithm"] for k in keyring["signing_keys"]] == ["sm2"]
    again = runner.invoke(app, ["init", "--state-dir", str(state_dir), "--crypto-profile", "international"])
    assert again.exit_code != 0
    assert "initialised under another profile" in again.output
    unknown = runner.invoke(app, ["init", "--state-dir", str(state_dir), "--crypto-profile", "fips"])
    assert unknown.exit_code != 0
    assert "unknown crypto profile 'fips'" in unknown.output


def test_init_by_default_writes_an_ed25519_key_without_an_algorithm_member(state_dir: Path) -> None:
    _init(state_dir)
    keyring = json.loads((state_dir / "keyring.json").read_text())
    assert [sorted(k) for k in keyring["signing_keys"]] == [
        ["kid", "not_after", "not_before", "private", "public", "state"]
    ]
