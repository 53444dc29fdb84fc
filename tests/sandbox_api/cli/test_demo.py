"""The README's demo flow end to end: `sandbox demo --no-serve` with small data, then again to reuse it."""

from __future__ import annotations

import json
import re
import shutil
import socket
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox_api.cli import demo_data, demo_run
from sandbox_api.cli.demo import CAST, FLU_BY_DISTRICT
from sandbox_api.cli.demo_run import DEMO_TOKENS_FILE
from sandbox_api.cli.main import app
from sandbox_api.client.api_client import SandboxClient
from tests.sandbox_api.live_gateway import AUDITOR, serve_gateway
from tests.sandbox_api.replay_helpers import replay_live

runner = CliRunner()
SMALL = ["--citizens", "5000", "--visits", "20000", "--port", "0", "--no-serve", "--no-progress"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    state_dir = tmp_path_factory.mktemp("demo") / "state"
    result = runner.invoke(app, ["demo", "--state-dir", str(state_dir), *SMALL])
    assert result.exit_code == 0, result.output
    return state_dir, result.output


def test_demo_prints_a_token_for_every_role(first_run: tuple[Path, str]) -> None:
    _, output = first_run
    for member in CAST:
        assert f"  {member.name} " in output
    assert {member.role for member in CAST} == {
        "steward",
        "policy_officer",
        "operator",
        "output_checker",
        "auditor",
    }
    tokens = set(re.findall(r"(?<![\w])sbx_[\w-]{40,}", output))
    assert len(tokens) == len(CAST) + 1  # and the admin
    assert re.search(r"Web console: http://127\.0\.0\.1:\d+/console ", output)


def test_demo_narrates_release_rejection_and_audit(first_run: tuple[Path, str]) -> None:
    _, output = first_run
    assert "tried to approve her own scope and was refused" in output
    assert "suppression report" in output
    assert "job-rejected" in output
    assert "every hash links to the one before" in output
    assert "Lighthouse Island" not in output.split("3. An allowed aggregate")[1].split("4. Differential")[0]


def test_demo_walks_through_a_dp_job_its_cost_first_and_the_budget_left(first_run: tuple[Path, str]) -> None:
    _, output = first_run
    section = output.split("4. Differential privacy")[1].split("5. A query")[0]
    assert "this job would spend epsilon 1 (laplace); you have epsilon 5, delta 5e-09 left" in section
    assert "95 % of releases within" in section
    assert "clamped before aggregating: citizens.income to [0, 200000]" in section
    assert "this job spent epsilon 1 (laplace)" in section
    assert "budget left in flu-study-2026-dp: epsilon 4 of 5" in section
    # Every district of the public domain is released, the tiny one too: with noise, not suppressed.
    assert "Lighthouse Island" in section


def test_demo_keeps_its_tokens_owner_readable_only(first_run: tuple[Path, str]) -> None:
    state_dir, _ = first_run
    tokens = state_dir / DEMO_TOKENS_FILE
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert set(json.loads(tokens.read_text())["tokens"]) == {"admin", *(m.name for m in CAST)}


def test_every_job_released_on_the_demo_replays_to_a_match(first_run: tuple[Path, str]) -> None:
    """The auditor's false alarm of issue 20 on the demo deployment: a job that reads citizens only,
    under flu-study-2026 (which names citizens and visits), replayed as a mismatch
    (scope_unknown_dataset). Now it, and every job the walkthrough released, replays to a match."""
    state_dir, _ = first_run
    tokens = json.loads((state_dir / DEMO_TOKENS_FILE).read_text())["tokens"]
    with serve_gateway(state_dir) as url, SandboxClient(url, tokens["alice"], timeout=120) as alice:
        job = alice.submit_job(
            demo_data.DEMO_SCOPE_NAME, "SELECT sex, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY sex"
        )
        assert alice.wait_for_job(job.job_id).state == "released"
        assert replay_live(url, tokens[AUDITOR]) >= 2  # the walkthrough's release and this one


def test_demo_runs_again_on_the_same_state(first_run: tuple[Path, str]) -> None:
    state_dir, _ = first_run
    result = runner.invoke(app, ["demo", "--state-dir", str(state_dir), *SMALL])
    assert result.exit_code == 0, result.output
    assert "Reusing the demo deployment" in result.output
    assert "every hash links to the one before" in result.output


def test_fresh_refuses_to_delete_a_directory_it_did_not_create(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    result = runner.invoke(app, ["demo", "--state-dir", str(precious), "--fresh", *SMALL])
    assert result.exit_code == 1
    assert "refuses to delete" in result.output
    assert (precious / "thesis.tex").exists()


def test_demo_refuses_a_deployment_it_did_not_set_up(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    assert runner.invoke(app, ["init", "--state-dir", str(state_dir)]).exit_code == 0
    result = runner.invoke(app, ["demo", "--state-dir", str(state_dir), *SMALL])
    assert result.exit_code == 1
    assert "not set up by the demo" in result.output


def test_fresh_deletes_what_a_demo_left_lock_files_included(
    first_run: tuple[Path, str], tmp_path: Path
) -> None:
    """A first run leaves keyring.json.lock beside the keyring; --fresh used to refuse to delete it."""
    state_dir, _ = first_run
    copy = tmp_path / "state"
    shutil.copytree(state_dir, copy)
    (copy / "keyring.json.lock").touch()
    (copy / ".keyring.json.0123abcd.tmp").touch()  # left by a crash while the keyring was saved
    result = runner.invoke(app, ["demo", "--state-dir", str(copy), "--fresh", *SMALL])
    assert result.exit_code == 0, result.output
    assert "Reusing" not in result.output


def test_a_busy_port_fails_at_once_and_makes_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["demo", "--state-dir", str(state_dir), *SMALL[:4], "--port", str(port), "--no-serve"]
        result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "nothing was created" in result.output
    assert not state_dir.exists()


def test_a_first_run_stopped_half_way_removes_the_state_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal in the middle of provisioning (here: the stewards' step) leaves no half-made deployment
    that only ``rm -rf`` would clear, and says so."""
    from sandbox_api.cli import demo
    from sandbox_api.client.api_client import ClientError

    def refuse(*_args: object, **_kwargs: object) -> demo.DemoCast:
        raise ClientError(503, "service-unavailable", "the gateway went away")

    monkeypatch.setattr(demo, "provision", refuse)
    state_dir = tmp_path / "state"
    result = runner.invoke(app, ["demo", "--state-dir", str(state_dir), *SMALL])
    assert result.exit_code == 1
    assert "the half-made state directory was removed" in result.output
    assert not state_dir.exists()


def test_the_demo_names_match_the_data_generators() -> None:
    assert (demo_run.DEMO_SCOPE, demo_run.DEFAULT_SEED) == (demo_data.DEMO_SCOPE_NAME, demo_data.DEFAULT_SEED)


def test_the_demo_says_how_to_call_sandbox_when_it_is_not_on_the_path(tmp_path: Path) -> None:
    beside = tmp_path / ".venv" / "bin" / "sandbox"
    beside.parent.mkdir(parents=True)
    beside.touch()
    assert demo_run.how_to_run_sandbox(on_path=None, beside=beside) == str(beside)
    assert demo_run.how_to_run_sandbox(on_path=str(beside), beside=beside) == "sandbox"
    assert demo_run.how_to_run_sandbox(on_path="/usr/bin/sandbox", beside=beside) == str(beside)


def test_the_cli_shows_a_dp_jobs_cost_before_it_runs_and_its_spending_after(
    first_run: tuple[Path, str],
) -> None:
    state_dir, _ = first_run
    tokens = json.loads((state_dir / DEMO_TOKENS_FILE).read_text())["tokens"]
    sql = "SELECT sex, COUNT(*) AS people, AVG(income) AS mean_income FROM citizens GROUP BY sex"
    with serve_gateway(state_dir) as url:
        where = ["--url", url, "--token", tokens["alice"]]
        check = runner.invoke(app, ["job", "check", "--scope", demo_data.DP_SCOPE_NAME, sql, *where])
        assert check.exit_code == 0, check.output
        assert (
            "differential privacy: this job would spend epsilon 1 (laplace); you have epsilon" in check.output
        )
        assert "mean_income (sum)" in check.output
        assert "95 % of releases within" in check.output
        assert "clamped before aggregating: citizens.income to [0, 200000]" in check.output
        submitted = runner.invoke(app, ["job", "submit", "--scope", demo_data.DP_SCOPE_NAME, sql, *where])
        assert submitted.exit_code == 0, submitted.output
        assert "differential privacy: this job spent epsilon 1 (laplace) on people, mean_income.sum" in (
            submitted.output
        )
        assert "laplace noise of scale" in submitted.output


def test_the_demos_question_submitted_as_plain_sql_runs_as_a_cross_domain_job(
    first_run: tuple[Path, str],
) -> None:
    """Visits are health-bureau's, districts civil-affairs': without --cross-domain the question is still
    never one sandbox's job. The dry run says how it would run, and the job runs that way."""
    state_dir, _ = first_run
    tokens = json.loads((state_dir / DEMO_TOKENS_FILE).read_text())["tokens"]
    with serve_gateway(state_dir) as url:
        where = ["--url", url, "--token", tokens["alice"]]
        check = runner.invoke(
            app, ["job", "check", "--scope", demo_data.DEMO_SCOPE_NAME, FLU_BY_DISTRICT, *where]
        )
        assert check.exit_code == 0, check.output
        assert "runs as a cross-domain job" in check.output
        with SandboxClient(url, tokens["alice"], timeout=120) as alice:
            job = alice.submit_job(demo_data.DEMO_SCOPE_NAME, FLU_BY_DISTRICT)
            assert job.kind == "cross-domain"
            finished = alice.wait_for_job(job.job_id, timeout=600.0)
            assert finished.state == "released", finished.reason
            assert "cross_domain_split" in finished.applied
