"""The auditor notebook, and the auditor's commands, against a real gateway on a loopback port."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from typer.testing import CliRunner

from sandbox_api.cli import demo, demo_data
from sandbox_api.cli.audit import build_app
from sandbox_api.client.auditor import AuditorClient
from tests.sandbox_api.live_gateway import seeded_gateway

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "auditor_walkthrough.ipynb"
cli = CliRunner()


@dataclass(frozen=True)
class Released:
    url: str
    cast: demo.DemoCast
    job_id: str
    result_file: Path
    state_dir: Path


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Released]:
    root = tmp_path_factory.mktemp("auditor")
    with seeded_gateway(root / "state", citizens=1_500, visits=5_000, seed=31) as (url, cast):
        with AuditorClient(url, cast.tokens["alice"], timeout=120) as operator:
            job_id = operator.submit_job(demo_data.DEMO_SCOPE_NAME, demo.FLU_BY_DISTRICT).job_id
            assert operator.wait_for_job(job_id, timeout=120).state == "released"
            result_file = root / "result.json"
            # The operator keeps the result exactly as served, and hands it to the auditor.
            result_file.write_text(json.dumps(operator.result_document(job_id)), encoding="utf-8")
        yield Released(url=url, cast=cast, job_id=job_id, result_file=result_file, state_dir=root / "state")


def test_auditor_notebook_runs_against_a_live_gateway(
    released: Released, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    monkeypatch.setenv("SANDBOX_URL", released.url)
    monkeypatch.setenv("SANDBOX_TOKEN", released.cast.tokens["audrey"])
    monkeypatch.setenv("SANDBOX_JOB_ID", released.job_id)
    monkeypatch.setenv("SANDBOX_RESULT_FILE", str(released.result_file))
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [output for cell in code for output in cell.get("outputs", [])]
    assert [o for o in outputs if o.get("output_type") == "error"] == []
    assert all(cell.get("execution_count") for cell in code)
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert f"OK: receipt for job {released.job_id}" in text
    assert "the operator's result file is exactly what job" in text
    assert "match - " in text
    assert "the last event is our own export: audit.exported by audrey" in text
    for attack in ("edited event", "deleted event", "cut tail", "edited receipt", "edited result"):
        assert f"{attack}: not detected" not in text
        assert f"{attack}: " in text
    assert os.environ["SANDBOX_TOKEN"] not in text


def test_replay_command_reports_a_match(released: Released) -> None:
    answer = cli.invoke(
        build_app(),
        ["replay", released.job_id, "--url", released.url, "--token", released.cast.tokens["audrey"]],
    )
    assert answer.exit_code == 0, answer.output
    assert answer.output.startswith(f"MATCH: job {released.job_id} replayed to the same result hash")


def test_replay_command_names_the_kind_of_a_mismatch_and_what_to_do(released: Released) -> None:
    database = released.state_dir / "metadata.db"
    query = "SELECT result_hash FROM results WHERE job_id = ?"
    with sqlite3.connect(database) as db:
        (kept,) = db.execute(query, (released.job_id,)).fetchone()
        db.execute("UPDATE results SET result_hash = ? WHERE job_id = ?", ("0" * 64, released.job_id))
    try:
        answer = cli.invoke(
            build_app(),
            ["replay", released.job_id, "--url", released.url, "--token", released.cast.tokens["audrey"]],
        )
    finally:
        with sqlite3.connect(database) as db:
            db.execute("UPDATE results SET result_hash = ? WHERE job_id = ?", (kept, released.job_id))
    assert answer.exit_code == 1, answer.output
    assert answer.output.startswith(f"MISMATCH (release-differs): job {released.job_id} does not replay")
    assert "  - [release-differs] result.stored_hash: the stored result's hash 000" in answer.output
    assert "  next: treat it as an incident" in answer.output


def test_replay_command_refuses_an_operator(released: Released) -> None:
    answer = cli.invoke(
        build_app(),
        ["replay", released.job_id, "--url", released.url, "--token", released.cast.tokens["alice"]],
    )
    assert answer.exit_code == 1
    assert "403 forbidden" in answer.output


def test_exported_keys_and_a_downloaded_bundle_verify_with_the_cli(
    released: Released, tmp_path: Path
) -> None:
    keys, bundle = tmp_path / "keys.json", tmp_path / "bundle.json"
    auditor = ["--url", released.url, "--token", released.cast.tokens["audrey"]]
    assert (
        cli.invoke(build_app(), ["keys", "export", "--out", str(keys), "--url", released.url]).exit_code == 0
    )
    assert cli.invoke(build_app(), ["audit", "bundle", "--out", str(bundle), *auditor]).exit_code == 0
    answer = cli.invoke(build_app(), ["audit", "verify", str(bundle), "--public-key", str(keys)])
    assert answer.exit_code == 0, answer.output
    tampered = json.loads(bundle.read_text())
    del tampered["events"][-1]
    bundle.write_text(json.dumps(tampered))
    answer = cli.invoke(build_app(), ["audit", "verify", str(bundle), "--public-key", str(keys)])
    assert answer.exit_code == 1
    assert "BROKEN: chain truncated" in answer.output
