"""The Python client and the CLI's remote commands against a real gateway.

One gateway for the module: ``sandbox serve`` in a subprocess on a free loopback port, a temporary state
directory, the real SQLite store, keyring and sandboxed executor, seeded through the client itself with
a small copy of the demo data (so ``demo.provision`` is exercised too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from crypto.audit import AuditEntry, verify_chain
from sandbox_api.cli import demo, demo_data
from sandbox_api.cli.main import app
from sandbox_api.client.api_client import ClientError, SandboxClient
from tests.sandbox_api.live_gateway import free_port, seeded_gateway

CITIZENS = 3_000
VISITS = 15_000
SEED = 4242
SCOPE = demo_data.DEMO_SCOPE_NAME
runner = CliRunner()


@dataclass(frozen=True)
class Gateway:
    url: str
    cast: demo.DemoCast
    state_dir: Path


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    state_dir = tmp_path_factory.mktemp("gateway") / "state"
    with seeded_gateway(state_dir, citizens=CITIZENS, visits=VISITS, seed=SEED) as (url, cast):
        yield Gateway(url=url, cast=cast, state_dir=state_dir)


@pytest.fixture(scope="module")
def expected_flu(gateway: Gateway) -> pd.DataFrame:
    """The flu-by-district query computed independently on the same generated data, k rule applied."""
    citizens, visits = demo_data.demo_datasets(citizens_n=CITIZENS, visits_n=VISITS, seed=SEED)
    flu = visits.frame[visits.frame["diagnosis"] == "J11 Influenza"].merge(citizens.frame, on="person_id")
    flu = flu[flu["district"] != "Military Zone"]
    patients = flu.groupby("district")["person_id"].nunique()
    return patients[patients >= 10].rename("patients").reset_index()


def client_for(gateway: Gateway, name: str) -> SandboxClient:
    return gateway.cast.client(name, timeout=120)


# --- identity and errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("admin", "admin"),
        ("carol", "steward"),
        ("olga", "policy_officer"),
        ("alice", "operator"),
        ("audrey", "auditor"),
    ],
)
def test_whoami_for_every_role(gateway: Gateway, name: str, role: str) -> None:
    with client_for(gateway, name) as client:
        who = client.whoami()
    assert (who.name, who.role.value) == (name, role)


def test_a_wrong_token_is_a_401_problem(gateway: Gateway) -> None:
    with SandboxClient(gateway.url, "sbx_not-a-real-token") as client, pytest.raises(ClientError) as raised:
        client.whoami()
    assert (raised.value.status, raised.value.code) == (401, "not-authenticated")
    assert raised.value.problem["type"] == "urn:sandbox:not-authenticated"


def test_a_wrong_role_is_a_403_problem(gateway: Gateway) -> None:
    with client_for(gateway, "alice") as operator, pytest.raises(ClientError) as raised:
        operator.create_domain("mine")
    assert raised.value.status == 403


def test_an_unknown_job_is_a_404_problem(gateway: Gateway) -> None:
    with client_for(gateway, "alice") as operator, pytest.raises(ClientError) as raised:
        operator.get_job("does-not-exist")
    assert (raised.value.status, raised.value.code) == (404, "not-found")


def test_an_unreachable_gateway_is_a_client_error() -> None:
    client = SandboxClient(f"http://127.0.0.1:{free_port()}", "sbx_x", timeout=2)
    with client, pytest.raises(ClientError) as raised:
        client.health()
    assert (raised.value.status, raised.value.code) == (0, "unreachable")


# --- catalog ---------------------------------------------------------------------------------------


def test_steward_sees_schema_and_row_counts_but_never_rows(gateway: Gateway) -> None:
    with client_for(gateway, "hank") as steward:
        (visits,) = steward.list_datasets()
        raw = httpx.get(
            f"{gateway.url}/v1/datasets", headers={"Authorization": f"Bearer {gateway.cast.tokens['hank']}"}
        )
    assert (visits.domain, visits.name) == (demo_data.HEALTH_BUREAU, demo_data.VISITS_DATASET)
    (version,) = visits.versions
    (table,) = version.tables
    assert (table.name, table.unit, table.row_count) == ("visits", "person_id", VISITS)
    assert {c.name: c.cls for c in table.columns}["diagnosis"] == "sensitive"
    assert "V000000001" not in raw.text  # no visit id, i.e. no row, anywhere in the listing


def test_upload_from_a_csv_path_is_idempotent(gateway: Gateway, tmp_path: Path) -> None:
    frame = demo_data.citizens(300, seed=9)[["person_id", "district", "income"]]
    path = tmp_path / "residents.csv"
    frame.to_csv(path, index=False)
    manifest = {
        "tables": [
            {
                "name": "residents",
                "unit": "person_id",
                "columns": [
                    {"name": "person_id", "type": "VARCHAR", "class": "identifying"},
                    {"name": "district", "type": "VARCHAR", "class": "internal"},
                    {"name": "income", "type": "DOUBLE", "class": "sensitive"},
                ],
            }
        ]
    }
    with client_for(gateway, "carol") as steward:
        steward.create_dataset(demo_data.CIVIL_AFFAIRS, "residents", description="a CSV upload")
        first = steward.upload_version(
            demo_data.CIVIL_AFFAIRS, "residents", manifest=manifest, tables={"residents": path}
        )
        again = steward.upload_version(
            demo_data.CIVIL_AFFAIRS, "residents", manifest=manifest, tables={"residents": path}
        )
    assert first.created
    assert not again.created
    assert again.version.version_id == first.version.version_id
    assert first.version.tables[0].row_count == 300


def test_a_bad_manifest_comes_back_with_findings(gateway: Gateway) -> None:
    frame = pd.DataFrame({"person_id": ["P1"], "x": [1]})
    manifest = {
        "tables": [
            {"name": "t", "unit": "nobody", "columns": [{"name": "x", "type": "BIGINT", "class": "secret"}]}
        ]
    }
    with client_for(gateway, "carol") as steward:
        steward.create_dataset(demo_data.CIVIL_AFFAIRS, "broken")
        with pytest.raises(ClientError) as raised:
            steward.upload_version(demo_data.CIVIL_AFFAIRS, "broken", manifest=manifest, tables={"t": frame})
    assert raised.value.status == 422
    assert raised.value.findings


# --- scopes ----------------------------------------------------------------------------------------


def test_operator_lists_only_the_active_scope_granted_to_them(gateway: Gateway) -> None:
    with client_for(gateway, "alice") as operator:
        scopes = operator.list_scopes()
    # The demo grants alice its two scopes, the plain one and the differentially private one.
    assert sorted(scope.name for scope in scopes) == sorted([SCOPE, demo_data.DP_SCOPE_NAME])
    assert all(scope.active_version is not None for scope in scopes)


def test_the_author_cannot_approve_their_own_scope(gateway: Gateway) -> None:
    document = demo_data.demo_scope_yaml(
        valid_from=date(2020, 1, 1), valid_until=date(2099, 12, 31), operator="alice"
    ).replace(f"scope: {SCOPE}", "scope: second-opinion")
    with client_for(gateway, "olga") as author, client_for(gateway, "peter") as other:
        created = author.create_scope(document)
        assert created.version.state == "pending"
        with pytest.raises(ClientError) as raised:
            author.approve_scope("second-opinion", created.version.version_id)
        assert raised.value.status == 403
        rejected = other.reject_scope("second-opinion", created.version.version_id, reason="not needed")
    assert rejected.state == "rejected"


# --- jobs ------------------------------------------------------------------------------------------


def test_dry_run_shows_the_rewritten_sql_or_every_finding(gateway: Gateway) -> None:
    with client_for(gateway, "alice") as operator:
        allowed = operator.check_job(SCOPE, demo.FLU_BY_DISTRICT)
        refused = operator.check_job(SCOPE, demo.SINGLE_OUT)
    assert allowed.allowed
    assert allowed.rewritten_sql is not None
    assert "_sbx_units" in allowed.rewritten_sql
    assert not refused.allowed
    assert len(refused.findings) >= 3  # name, national_id and phone are each denied


def test_a_released_job_matches_an_independent_computation(
    gateway: Gateway, expected_flu: pd.DataFrame
) -> None:
    with client_for(gateway, "alice") as operator:
        job = operator.submit_job(SCOPE, demo.FLU_BY_DISTRICT)
        assert job.state in {"queued", "running", "checking", "released"}
        finished = operator.wait_for_job(job.job_id, timeout=120)
        assert finished.state == "released", finished.reason
        result = operator.get_result(job.job_id)
    released = result.table.sort_values("district").reset_index(drop=True)
    expected = expected_flu.sort_values("district").reset_index(drop=True)
    assert list(released["district"]) == list(expected["district"])
    assert list(released["patients"]) == list(expected["patients"])
    assert "Military Zone" not in set(released["district"])
    assert "rows_dropped" not in result.report.model_dump()  # how many tiny districts fell is for auditors
    assert result.report.reasons


def test_a_rejected_job_raises_with_its_findings_and_is_recorded(gateway: Gateway) -> None:
    with client_for(gateway, "alice") as operator:
        with pytest.raises(ClientError) as raised:
            operator.submit_job(SCOPE, demo.SINGLE_OUT)
        rejected = operator.get_job(str(raised.value.problem["job_id"]))
    assert (raised.value.status, raised.value.code) == (422, "job-rejected")
    assert {finding["rule"] for finding in raised.value.findings}
    assert rejected.state == "rejected"


def test_cancelling_a_finished_job_is_a_conflict(gateway: Gateway) -> None:
    with client_for(gateway, "alice") as operator:
        job = operator.submit_job(SCOPE, demo.RARE_DIAGNOSES)
        operator.wait_for_job(job.job_id, timeout=120)
        with pytest.raises(ClientError) as raised:
            operator.cancel_job(job.job_id)
    assert raised.value.status == 409


def test_operator_lists_own_jobs(gateway: Gateway) -> None:
    with client_for(gateway, "alice") as operator:
        job = operator.submit_job(SCOPE, demo.RARE_DIAGNOSES)
        operator.wait_for_job(job.job_id, timeout=120)
        jobs = operator.list_jobs()
    assert job.job_id in {listed.job_id for listed in jobs}
    assert {listed.owner for listed in jobs} == {"alice"}


# --- audit -----------------------------------------------------------------------------------------


def test_audit_export_verifies_against_the_head(gateway: Gateway) -> None:
    with client_for(gateway, "audrey") as auditor:
        head = auditor.audit_head()
        export = auditor.audit_export()
    entries = [AuditEntry.from_json(line) for line in export.splitlines()]
    report = verify_chain(entries, expected_head=head.hash)
    assert report.count == len(entries) > head.count - 1
    assert {"principal.created", "scope.approved", "job.released"} <= {entry.event for entry in entries}


def test_audit_events_page_and_filter(gateway: Gateway) -> None:
    with client_for(gateway, "audrey") as auditor:
        first = auditor.audit_events(limit=3)
        assert first.next_since_seq is not None
        second = auditor.audit_events(limit=3, since_seq=first.next_since_seq)
        jobs = auditor.audit_events(event="job.", limit=1000)
    assert [e.seq for e in first.events] == [0, 1, 2]
    assert second.events[0].seq == 3
    assert jobs.events
    assert all(e.event.startswith("job.") for e in jobs.events)


def test_only_auditors_read_the_audit_log(gateway: Gateway) -> None:
    with client_for(gateway, "alice") as operator, pytest.raises(ClientError) as raised:
        operator.audit_export()
    assert raised.value.status == 403


def test_cli_verifies_a_real_export_and_catches_an_edit(gateway: Gateway, tmp_path: Path) -> None:
    with client_for(gateway, "audrey") as auditor:
        lines = auditor.audit_export().splitlines()
    good = tmp_path / "audit.jsonl"
    good.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert runner.invoke(app, ["audit", "verify", str(good)]).exit_code == 0
    event = json.loads(lines[5])
    event["actor"] = "mallory"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join([*lines[:5], json.dumps(event), *lines[6:]]) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["audit", "verify", str(tampered)])
    assert result.exit_code == 1
    assert "seq 5" in result.output


# --- the CLI's remote commands ---------------------------------------------------------------------


def _remote(gateway: Gateway, name: str) -> list[str]:
    return ["--url", gateway.url, "--token", gateway.cast.tokens[name]]


def test_cli_lists_datasets_and_scopes(gateway: Gateway) -> None:
    datasets = runner.invoke(app, ["dataset", "list", "--json", *_remote(gateway, "alice")])
    scopes = runner.invoke(app, ["scope", "list", "--json", *_remote(gateway, "alice")])
    assert datasets.exit_code == 0, datasets.output
    assert scopes.exit_code == 0, scopes.output
    assert {d["name"] for d in json.loads(datasets.stdout)} == {"citizens", "visits"}
    assert sorted(s["name"] for s in json.loads(scopes.stdout)) == sorted([SCOPE, demo_data.DP_SCOPE_NAME])


def test_cli_job_check_and_submit(gateway: Gateway) -> None:
    checked = runner.invoke(
        app, ["job", "check", "--scope", SCOPE, demo.SINGLE_OUT, "--json", *_remote(gateway, "alice")]
    )
    assert checked.exit_code == 1
    assert json.loads(checked.stdout)["allowed"] is False
    submitted = runner.invoke(
        app, ["job", "submit", "--scope", SCOPE, demo.RARE_DIAGNOSES, *_remote(gateway, "alice")]
    )
    assert submitted.exit_code == 0, submitted.output
    assert "suppression report" in submitted.output
    assert "C92 Myeloid leukaemia" not in submitted.output  # too few patients to release
    refused = runner.invoke(
        app, ["job", "submit", "--scope", SCOPE, demo.SINGLE_OUT, *_remote(gateway, "alice")]
    )
    assert refused.exit_code == 1
    assert "job-rejected" in refused.output


def test_cli_reports_a_refusal_with_its_reason(gateway: Gateway) -> None:
    result = runner.invoke(app, ["dataset", "list", "--url", gateway.url, "--token", "sbx_wrong"])
    assert result.exit_code == 1
    assert "401 not-authenticated" in result.output


def test_the_client_moves_a_python_job_from_mock_to_real_by_one_argument(gateway: Gateway) -> None:
    code = (
        "result = aggregate(citizens, by=['sex'], "
        "aggs={'people': ('sex', 'count'), 'avg_income': ('income', 'mean')})"
    )
    with client_for(gateway, "alice") as operator:
        assert operator.check_job(SCOPE, code=code, mode="mock").allowed
        runs = {}
        for mode in ("mock", "real"):
            job = operator.submit_job(SCOPE, code=code, mode=mode)
            finished = operator.wait_for_job(job.job_id, timeout=120)
            assert finished.state == "released", finished.reason
            runs[mode] = operator.get_result(job.job_id)
    assert runs["mock"].raw.mode == "mock"
    assert runs["real"].raw.mode == "real"
    assert set(runs["real"].table["sex"]) <= {"F", "M", "X"}
    assert (runs["real"].table["people"] >= 10).all()
