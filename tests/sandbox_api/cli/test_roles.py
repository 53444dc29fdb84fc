"""Every role's whole job from the command line, against a real gateway (``sandbox serve`` in a
subprocess, seeded with a small copy of the demo through the client).

Ids are given as short prefixes wherever the commands print them shortened, as a person would type them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sandbox_api.cli import demo, demo_data
from sandbox_api.cli.datasets import human_size
from sandbox_api.cli.main import app
from tests.sandbox_api.live_gateway import seeded_gateway

SCOPE = demo_data.DEMO_SCOPE_NAME
runner = CliRunner()


@dataclass(frozen=True)
class Gateway:
    url: str
    cast: demo.DemoCast

    def run(self, who: str, *args: str) -> Result:
        """``sandbox ARGS`` as ``who`` (a name of the demo cast, or a raw token)."""
        token = self.cast.tokens.get(who, who)
        return runner.invoke(app, [*args, "--url", self.url, "--token", token])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    state_dir = tmp_path_factory.mktemp("cli-roles") / "state"
    with seeded_gateway(state_dir, citizens=2_000, visits=8_000, seed=515) as (url, cast):
        yield Gateway(url=url, cast=cast)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def refused(result: Result) -> str:
    assert result.exit_code == 1, result.output
    return result.output


# --- admin -------------------------------------------------------------------------------------------


def test_admin_manages_domains_principals_and_tokens(gateway: Gateway) -> None:
    assert "civil-affairs" in ok(gateway.run("admin", "domain", "list"))
    ok(gateway.run("admin", "domain", "create", "tax-office", "--description", "Tax returns"))
    rotated = json.loads(ok(gateway.run("admin", "domain", "rotate-key", "tax-office", "--json")))
    assert rotated["domain"] == "tax-office"
    token = ok(
        gateway.run("admin", "principal", "create", "tess", "--role", "steward", "--domain", "tax-office")
    )
    token = token.strip()
    assert token.startswith("sbx_")
    listed = ok(gateway.run("admin", "principal", "list", "--csv"))
    assert any(line.startswith("tess,steward,tax-office,") for line in listed.splitlines())
    assert "tess" in ok(gateway.run(token, "whoami"))
    assert "tess is disabled" in ok(gateway.run("admin", "principal", "disable", "tess", "--yes"))
    assert "401" in refused(gateway.run(token, "whoami"))
    assert "enabled" in ok(gateway.run("admin", "principal", "enable", "tess"))
    assert "tess" in ok(gateway.run(token, "whoami"))  # the same token works again
    issued = gateway.run("admin", "token", "issue", "tess", "--name", "laptop", "--days", "3")
    again = ok(issued).strip()
    assert "expires" in issued.stderr
    assert json.loads(ok(gateway.run(again, "whoami", "--json")))["role"] == "steward"
    tokens = json.loads(ok(gateway.run("admin", "token", "list", "tess", "--json")))
    assert [t["name"] for t in tokens] == ["", "laptop"]
    assert again not in json.dumps(tokens)
    laptop = tokens[1]["id"]
    assert f"revoked token {laptop} of tess" in ok(
        gateway.run("admin", "token", "revoke", "tess", "--id", laptop)
    )
    assert "401" in refused(gateway.run(again, "whoami"))
    assert "tess" in ok(gateway.run(token, "whoami"))  # revoking one left the other
    assert "revoked 1 token(s) of tess" in ok(gateway.run("admin", "token", "revoke", "tess"))
    assert "nothing was revoked" in refused(gateway.run("admin", "token", "revoke", "tess"))


def test_a_refusal_says_what_to_try(gateway: Gateway) -> None:
    said = refused(gateway.run("alice", "principal", "list"))
    assert "403" in said
    assert "sandbox whoami" in said


# --- steward -------------------------------------------------------------------------------------------


def _residents_csv(tmp_path: Path) -> Path:
    path = tmp_path / "residents.csv"
    frame = demo_data.citizens(300, seed=9)[["person_id", "district", "income"]]
    frame.to_csv(path, index=False)
    return path


def test_steward_infers_a_manifest_uploads_shows_and_retires(gateway: Gateway, tmp_path: Path) -> None:
    csv = _residents_csv(tmp_path)
    manifest = tmp_path / "manifest.json"
    ok(runner.invoke(app, ["dataset", "infer", str(csv), "--out", str(manifest)]))
    drafted = json.loads(manifest.read_text())
    columns = {c["name"]: (c["type"], c["class"]) for c in drafted["tables"][0]["columns"]}
    assert columns == {
        "person_id": ("VARCHAR", "identifying"),
        "district": ("VARCHAR", "internal"),
        "income": ("DOUBLE", "internal"),
    }
    dataset = f"{demo_data.CIVIL_AFFAIRS}/residents"
    upload = ["dataset", "upload", dataset, "--manifest", str(manifest), "--table", f"residents={csv}"]
    missing = refused(gateway.run("carol", *upload))
    assert "404" in missing
    assert "--create" in missing  # the hint
    stored = gateway.run("carol", *upload, "--create")
    assert "300" in ok(stored)
    assert f"sent {human_size(csv.stat().st_size)} in " in stored.output  # every byte counted as sent
    assert "/s)" in stored.output  # and the rate
    assert "stored as a draft" in stored.output
    found = json.loads(ok(gateway.run("carol", "dataset", "show", dataset, "--json")))
    assert found["current_version"] is None
    version = found["versions"][0]["version_id"]
    # Four eyes: carol cannot publish her own upload; cindy, the second steward, reviews and publishes it.
    assert "four eyes" in refused(gateway.run("carol", "dataset", "publish", dataset, version[:8]))
    report = ok(gateway.run("cindy", "dataset", "review", dataset, version[:8]))
    assert "validation passed" in report
    assert "unit_not_null" in report
    published = ok(gateway.run("cindy", "dataset", "publish", dataset, version[:8], "--reason", "checked"))
    assert f"current: {version[:12]}" in published
    shown = ok(gateway.run("carol", "dataset", "show", dataset))
    assert "identifying" in shown
    assert "retired" in ok(gateway.run("carol", "dataset", "retire", dataset, version[:8]))


def test_a_second_steward_returns_a_draft_with_reasons(gateway: Gateway, tmp_path: Path) -> None:
    csv = _residents_csv(tmp_path)
    manifest = tmp_path / "manifest.json"
    ok(runner.invoke(app, ["dataset", "infer", str(csv), "--out", str(manifest)]))
    dataset = f"{demo_data.CIVIL_AFFAIRS}/returned"
    upload = ["dataset", "upload", dataset, "--manifest", str(manifest), "--table", f"returned={csv}"]
    manifest.write_text(manifest.read_text().replace('"residents"', '"returned"'))
    ok(gateway.run("carol", *upload, "--create"))
    version = json.loads(ok(gateway.run("carol", "dataset", "show", dataset, "--json")))["versions"][0]
    returned = ok(
        gateway.run(
            "cindy", "dataset", "return", dataset, version["version_id"][:8], "--reason", "wrong year"
        )
    )
    assert "wrong year" in returned
    review = ok(gateway.run("carol", "dataset", "review", dataset, version["version_id"][:8]))
    assert "returned" in review
    assert "reviewed by cindy" in review


def test_a_manifest_error_keeps_its_field_path(gateway: Gateway, tmp_path: Path) -> None:
    csv = _residents_csv(tmp_path)
    manifest = tmp_path / "bad.json"
    columns = [
        {"name": "person_id", "type": "VARCHAR", "class": "identifying"},
        {"name": "district", "type": "VARCHAR", "class": "secret"},
        {"name": "income", "type": "DOUBLE", "class": "sensitive"},
    ]
    manifest.write_text(
        json.dumps({"tables": [{"name": "residents", "unit": "person_id", "columns": columns}]})
    )
    said = refused(
        gateway.run(
            "carol",
            *("dataset", "upload", f"{demo_data.CIVIL_AFFAIRS}/badly", "--create"),
            *("--manifest", str(manifest), "--table", f"residents={csv}"),
        )
    )
    assert "tables.0.columns.1.class" in said


def test_dataset_list_is_a_table_not_json(gateway: Gateway) -> None:
    listed = ok(gateway.run("alice", "dataset", "list"))
    assert "health-bureau/visits" in listed
    assert not listed.lstrip().startswith("[")
    assert len(listed.splitlines()) < 10


# --- policy officers ---------------------------------------------------------------------------------------


def _scope_file(tmp_path: Path, name: str, purpose: str) -> Path:
    text = demo_data.demo_scope_yaml(valid_from=date(2020, 1, 1), valid_until=date(2099, 12, 31))
    text = text.replace(f"scope: {SCOPE}", f"scope: {name}")
    text = re.sub(r"(?m)^purpose: .*$", f"purpose: {purpose}", text)
    path = tmp_path / f"{name}-{len(purpose)}.yaml"
    path.write_text(text)
    return path


def test_officers_lint_create_approve_diff_reject_and_revoke(gateway: Gateway, tmp_path: Path) -> None:
    first = _scope_file(tmp_path, "cli-study", "counts by district")
    assert "OK" in ok(runner.invoke(app, ["scope", "lint", str(first)]))
    typo = tmp_path / "typo.yaml"
    typo.write_text(first.read_text().replace("min_units:", "min_unit:"))
    assert "disclosure.min_unit" in refused(runner.invoke(app, ["scope", "lint", str(typo)]))

    created = gateway.run("olga", "scope", "create", str(first))
    assert "pending" in ok(created)
    assert "sandbox scope approve cli-study" in created.output  # the next step
    version = json.loads(ok(gateway.run("olga", "scope", "show", "cli-study", "--json")))["versions"][0]
    prefix = version["version_id"][:10]
    assert "approved" in ok(gateway.run("peter", "scope", "approve", "cli-study", prefix, "--reason", "fine"))
    assert "counts by district" in ok(gateway.run("olga", "scope", "show", "cli-study", prefix))

    second = _scope_file(tmp_path, "cli-study", "counts by district and sex")
    ok(gateway.run("olga", "scope", "create", str(second)))
    diff = ok(gateway.run("olga", "scope", "diff", "cli-study"))
    assert "-purpose: counts by district\n" in diff
    assert "+purpose: counts by district and sex\n" in diff
    newest = json.loads(ok(gateway.run("olga", "scope", "show", "cli-study", "--json")))["versions"]
    pending = next(v["version_id"] for v in newest if v["state"] == "pending")
    assert "--reason" in refused(
        gateway.run("peter", "scope", "reject", "cli-study", pending[:10], "--reason", " ")
    )
    assert "rejected" in ok(
        gateway.run("peter", "scope", "reject", "cli-study", pending[:10], "--reason", "no sex breakdown")
    )
    assert "revoked" in ok(
        gateway.run("olga", "scope", "revoke", "cli-study", prefix, "--reason", "study ended")
    )


def test_an_ambiguous_or_unknown_prefix_is_refused_with_the_reason(gateway: Gateway) -> None:
    assert "no scope" in refused(gateway.run("olga", "scope", "show", SCOPE, "ffffffff"))
    assert "too short" in refused(gateway.run("olga", "scope", "show", SCOPE, "a"))


# --- operator --------------------------------------------------------------------------------------------


def test_operator_checks_submits_follows_and_verifies_a_result(gateway: Gateway, tmp_path: Path) -> None:
    checked = refused(gateway.run("alice", "job", "check", "--scope", SCOPE, demo.SINGLE_OUT))
    assert "REFUSED" in checked
    submitted = gateway.run("alice", "job", "submit", "--scope", SCOPE, demo.RARE_DIAGNOSES)
    table = ok(submitted)
    assert "suppression report" in table
    assert "C92 Myeloid leukaemia" not in table  # too few patients to release
    for phase in ("queued", "released"):
        assert phase in submitted.output  # the phases, with elapsed time
    job_id = json.loads(ok(gateway.run("alice", "job", "list", "--json")))[0]["job_id"]
    assert job_id[:12] in ok(gateway.run("alice", "job", "list"))
    assert "released" in ok(gateway.run("alice", "job", "status", job_id[:8]))

    result_file, keys = tmp_path / "result.json", tmp_path / "keys.json"
    ok(gateway.run("alice", "job", "result", job_id[:8], "--out", str(result_file)))
    assert json.loads(result_file.read_text())["receipt"]["job_id"] == job_id
    ok(runner.invoke(app, ["keys", "export", "--out", str(keys), "--url", gateway.url]))
    verified = ok(runner.invoke(app, ["receipt", "verify", str(result_file), "--public-key", str(keys)]))
    assert f"OK: receipt for job {job_id}" in verified
    as_csv = ok(gateway.run("alice", "job", "result", job_id[:8], "--csv"))
    assert as_csv.splitlines()[0] == "diagnosis,patients,total_cost"
    assert json.loads(ok(gateway.run("alice", "job", "receipt", job_id[:8])))["job_id"] == job_id


def test_operator_runs_a_python_job_on_the_mock_twins_then_waits_by_prefix(
    gateway: Gateway, tmp_path: Path
) -> None:
    code = tmp_path / "job.py"
    code.write_text("result = aggregate(citizens, by=['sex'], aggs={'people': ('sex', 'count')})\n")
    mock = ok(
        gateway.run("alice", "job", "submit", "--scope", SCOPE, "--python", str(code), "--mode", "mock")
    )
    assert "people" in mock
    job_id = ok(gateway.run("alice", "job", "submit", "--scope", SCOPE, "--python", str(code), "--no-wait"))
    job_id = job_id.strip()
    waited = gateway.run("alice", "job", "wait", job_id[:8])
    assert "is released" in ok(waited)
    assert json.loads(ok(gateway.run("alice", "job", "status", job_id[:8], "--json")))["mode"] == "real"


def test_cancelling_a_finished_job_says_why_not(gateway: Gateway) -> None:
    job_id = ok(
        gateway.run("alice", "job", "submit", "--scope", SCOPE, demo.RARE_DIAGNOSES, "--no-wait")
    ).strip()
    ok(gateway.run("alice", "job", "wait", job_id[:8]))
    assert "409" in refused(gateway.run("alice", "job", "cancel", job_id[:8]))


# --- output checker ---------------------------------------------------------------------------------

MODEL = (
    "import numpy as np\n"
    "y = citizens['income'].to_numpy()\n"
    "result = {'mean': float(np.mean(y)), 'n': int(len(y))}\n"
)


def test_checker_lists_shows_denies_and_releases_withheld_outputs(gateway: Gateway, tmp_path: Path) -> None:
    code = tmp_path / "model.py"
    code.write_text(MODEL)
    first = gateway.run("alice", "job", "submit", "--scope", SCOPE, "--python", str(code))
    assert "withheld for output review" in refused(first)
    second = gateway.run("alice", "job", "submit", "--scope", SCOPE, "--python", str(code))
    refused(second)
    jobs = json.loads(ok(gateway.run("otto", "review", "list", "--json")))
    assert len(jobs) >= 2
    to_deny, to_release = jobs[-2]["job_id"], jobs[-1]["job_id"]
    assert to_deny[:12] in ok(gateway.run("otto", "review", "list"))
    shown = ok(gateway.run("otto", "review", "show", to_release[:8]))
    assert "mean" in shown
    assert "disclosure report" in shown
    assert "--reason" in refused(gateway.run("otto", "review", "deny", to_deny[:8], "--reason", ""))
    assert "denied" in ok(gateway.run("otto", "review", "deny", to_deny[:8], "--reason", "too precise"))
    assert "released" in ok(gateway.run("otto", "review", "release", to_release[:8], "--reason", "aggregate"))
    assert "mean" in ok(gateway.run("alice", "job", "result", to_release[:8]))


# --- auditor ---------------------------------------------------------------------------------------------


def test_auditor_reads_exports_verifies_and_replays(gateway: Gateway, tmp_path: Path) -> None:
    page = json.loads(ok(gateway.run("audrey", "audit", "events", "--event", "scope.", "--json")))
    assert page["events"]
    assert all(e["event"].startswith("scope.") for e in page["events"])
    first_five = ok(gateway.run("audrey", "audit", "events", "--limit", "5"))
    assert "domain.created" in first_five
    assert "more: --since-seq 4" in first_five
    head = json.loads(ok(gateway.run("audrey", "audit", "head")))
    export = tmp_path / "audit.jsonl"
    ok(gateway.run("audrey", "audit", "export", "--out", str(export)))
    verified = ok(runner.invoke(app, ["audit", "verify", str(export), "--expected-head", head["hash"]]))
    assert "OK" in verified
    released = json.loads(ok(gateway.run("audrey", "job", "list", "--state", "released", "--json")))
    assert "MATCH" in ok(gateway.run("audrey", "replay", released[0]["job_id"][:8]))


# --- access applications and alerts --------------------------------------------------------------------


def test_an_operator_applies_an_officer_drafts_another_approves_and_the_operator_sees_it(
    gateway: Gateway, tmp_path: Path
) -> None:
    submitted = gateway.run(
        "alice",
        "application",
        "submit",
        "--dataset",
        "civil-affairs/citizens",
        "--column",
        "civil-affairs/citizens:district",
        "--column",
        "civil-affairs/citizens:person_id",
        "--purpose",
        "people by district",
        "--days",
        "30",
        "--json",
    )
    application = json.loads(ok(submitted))
    assert application["state"] == "submitted"
    draft = tmp_path / "application-draft.yaml"
    draft.write_text(
        f"""
scope: cli-application
purpose: people by district
grantees: [operator:alice]
valid: {{from: {date.today()}, until: {date.today()}}}
datasets:
  civil-affairs/citizens:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      district: {{use: group}}
"""
    )
    drafted = gateway.run("olga", "application", "draft", application["id"], str(draft))
    assert "awaiting_approval" in ok(drafted)
    assert "sandbox scope approve cli-application" in drafted.output  # the next step
    shown = json.loads(ok(gateway.run("alice", "application", "show", application["id"], "--json")))
    assert shown["state"] == "awaiting_approval"
    version = shown["scope_version"][:10]
    assert "approved" in ok(gateway.run("peter", "scope", "approve", "cli-application", version))
    assert "approved" in ok(gateway.run("alice", "application", "list"))

    other = json.loads(
        ok(
            gateway.run(
                "alice",
                "application",
                "submit",
                "--dataset",
                "civil-affairs/citizens",
                "--purpose",
                "everything",
                "--days",
                "9",
                "--json",
            )
        )
    )
    assert "--reason" in refused(gateway.run("olga", "application", "refuse", other["id"], "--reason", " "))
    ok(gateway.run("olga", "application", "refuse", other["id"], "--reason", "say which columns"))
    assert "say which columns" in ok(gateway.run("alice", "application", "show", other["id"]))


def test_an_auditor_lists_alerts_and_an_acknowledgement_needs_a_note(gateway: Gateway) -> None:
    assert json.loads(ok(gateway.run("audrey", "alert", "list", "--json"))) == []
    assert "--note" in refused(gateway.run("audrey", "alert", "acknowledge", "nothing", "--note", " "))
    assert "does not exist" in refused(
        gateway.run("audrey", "alert", "acknowledge", "nothing", "--note", "x")
    )
