"""Cross-domain jobs through the API: submitted like any job (``kind: cross-domain``), each domain's part
run in that domain's own sandboxes, released through the one release function, audited per domain,
signed and replayed. At the end of the module every released job replays to its receipt."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from tests.sandbox_api.api_helpers import (
    DATASET,
    DOMAIN,
    OTHER_DOMAIN,
    World,
    citizens_table,
)
from tests.sandbox_api.auditing_helpers import receipt_of, replay, result_of
from tests.sandbox_api.cross_domain_helpers import BENEFITS, Probe, benefits_table, cross_domain_world
from tests.sandbox_api.python_job_helpers import approve_scope

XD = "citizens-and-benefits"
SQL = (
    "SELECT c.district AS district, COUNT(DISTINCT c.person_id) AS people, COUNT(*) AS payments, "
    "SUM(b.amount) AS total FROM citizens AS c JOIN benefits AS b ON c.person_id = b.person_id "
    "GROUP BY c.district"
)


def _scope(*, name: str = XD, dominance: bool = False) -> str:
    return f"""
scope: {name}
purpose: "Benefit payments by district"
grantees: [operator:alice]
valid: {{from: 2020-01-01, until: 2099-12-31}}
datasets:
  {DOMAIN}/{DATASET}:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      district: {{use: group}}
  {OTHER_DOMAIN}/{BENEFITS}:
    unit: person_id
    columns:
      person_id: {{use: join_key}}
      amount: {{use: aggregate, functions: [sum, avg, count], bounds: [0, 5000]}}
disclosure:
  min_units: 10
  suppression: drop
  max_rows: 1000
{"  dominance: {}" if dominance else ""}
"""


@pytest.fixture(scope="module")
def probe_and_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Probe, World]]:
    with cross_domain_world(tmp_path_factory.mktemp("state"), _scope(), XD) as probe_and_world:
        yield probe_and_world


def _submit(api: World, body: dict[str, Any]) -> Any:
    return api.client.post("/v1/jobs", headers=api.h("alice"), json=body)


@pytest.fixture(scope="module")
def released(probe_and_api: tuple[Probe, World]) -> dict[str, Any]:
    _, api = probe_and_api
    answer = _submit(api, {"scope": XD, "kind": "cross-domain", "sql": SQL})
    assert answer.status_code == 202, answer.text
    assert answer.json()["kind"] == "cross-domain"
    job = api.wait(answer.json()["job_id"])
    assert job["state"] == "released", job
    return job


def _oracle() -> dict[str, tuple[int, int, float]]:
    citizens = citizens_table().to_pandas()
    benefits = benefits_table().to_pandas()
    joined = benefits.merge(citizens, on="person_id")
    grouped = joined.groupby("district").agg(
        people=("person_id", "nunique"), payments=("amount", "size"), total=("amount", "sum")
    )
    return {
        str(d): (int(r.people), int(r.payments), round(float(r.total), 2))
        for d, r in grouped.iterrows()
        if r.people >= 10
    }


def test_the_joint_result_is_the_join_with_small_cells_dropped(
    probe_and_api: tuple[Probe, World], released: dict[str, Any]
) -> None:
    _, api = probe_and_api
    result = result_of(api, released["job_id"])
    assert result["columns"] == ["district", "people", "payments", "total"]
    got = {row[0]: (row[1], row[2], round(row[3], 2)) for row in result["rows"]}
    assert got == _oracle()
    assert "Tiny" not in got  # the district below min_units is never summed, never shown
    assert result["kind"] == "cross-domain"
    assert any("min_units" in reason or "10" in reason for reason in result["report"]["reasons"])


def test_each_domain_part_ran_in_sandboxes_holding_only_that_domain(
    probe_and_api: tuple[Probe, World], released: dict[str, Any]
) -> None:
    probe, _ = probe_and_api
    rounds = [s for s in probe.specs if s.job_id.startswith(released["job_id"] + "#")]
    # hello, blind, re-blind and the ledger's two unblind steps (one half, then the other domain's) on
    # each side; one answer (only benefits are summed)
    assert len(rounds) == 11
    for spec in rounds:
        assert spec.party is not None
        assert len({t.domain for t in spec.tables}) == 1, spec.job_id
    domains = {spec.party.side.value: spec.tables[0].domain for spec in rounds if spec.party is not None}
    assert sorted(domains.values()) == [OTHER_DOMAIN, DOMAIN]
    # No sandbox of this job was handed both domains' tables (the gateway never runs the join itself).
    assert not [s for s in probe.specs if s.job_id == released["job_id"]]


def test_what_crosses_holds_no_unit_id_and_no_amount(
    probe_and_api: tuple[Probe, World], released: dict[str, Any]
) -> None:
    probe, _ = probe_and_api
    units = {f"P{i:07d}" for i in range(1800)}
    amounts = {f"{a:.2f}" for a in benefits_table().column("amount").to_pylist()}
    outs = [
        r
        for s, r in zip(probe.specs, probe.results, strict=True)
        if s.job_id.startswith(released["job_id"] + "#")
    ]
    for result in outs:
        table = result.to_arrow()
        assert table.column_names == ["recipient", "message"]
        for recipient, message in zip(
            table.column("recipient").to_pylist(), table.column("message").to_pylist(), strict=True
        ):
            if len(message) == 32 and recipient == "other":  # a hello: the domain's public key
                continue
            text = message.decode("latin-1")
            assert not any(u in text for u in units)
            assert not any(f'"{a}"' in text or f":{a}," in text for a in amounts)


def test_each_domain_part_is_an_audit_event_with_its_inputs(
    probe_and_api: tuple[Probe, World], released: dict[str, Any]
) -> None:
    _, api = probe_and_api
    parts = [e for e in api.audit_events("job.domain_part") if e["details"]["job_id"] == released["job_id"]]
    assert sorted(e["actor"] for e in parts) == [f"domain:{OTHER_DOMAIN}", f"domain:{DOMAIN}"]
    versions = released["dataset_versions"]
    for event in parts:
        details = event["details"]
        (read,) = details["inputs"]
        assert details["dataset"] == read["dataset"]
        assert read["version_id"] == versions[read["dataset"]]
        assert len(details["part_sql_sha256"]) == 64
        assert set(details["sent_bytes"]) <= {"left", "right", "gateway"}
    assert {e["event"] for e in api.audit_events("job.")} >= {"job.domain_part", "job.released"}


def test_the_receipt_covers_both_domains_and_replay_matches(
    probe_and_api: tuple[Probe, World], released: dict[str, Any]
) -> None:
    _, api = probe_and_api
    receipt = receipt_of(api, released["job_id"])
    text = str(receipt)
    assert f"{DOMAIN}/{DATASET}" in text
    assert f"{OTHER_DOMAIN}/{BENEFITS}" in text
    report = replay(api, released["job_id"])
    assert report["outcome"] == "match", report
    assert report["expected_result_hash"] == report["actual_result_hash"] == released["result_hash"]


def test_a_count_of_a_column_is_released_as_the_join_counts_it_and_replays(
    probe_and_api: tuple[Probe, World],
) -> None:
    _, api = probe_and_api
    sql = SQL.replace("SUM(b.amount) AS total", "COUNT(b.amount) AS paid")
    answer = _submit(api, {"scope": XD, "kind": "cross-domain", "sql": sql})
    assert answer.status_code == 202, answer.text
    job = api.wait(answer.json()["job_id"])
    assert job["state"] == "released", job
    result = result_of(api, job["job_id"])
    assert result["columns"] == ["district", "people", "payments", "paid"]
    # No amount is NULL: every payment is counted, as COUNT(*) counts them.
    expected = {d: (people, payments, payments) for d, (people, payments, _) in _oracle().items()}
    assert {row[0]: tuple(row[1:]) for row in result["rows"]} == expected
    report = replay(api, job["job_id"])
    assert report["outcome"] == "match", report


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        # An outer join, and MIN, are outside the supported shape.
        (SQL.replace(" JOIN ", " LEFT JOIN "), "cross_domain_shape"),
        (SQL.replace("SUM(b.amount)", "MIN(b.amount)"), None),
    ],
)
def test_other_shapes_are_rejected_with_what_is_supported(
    probe_and_api: tuple[Probe, World], sql: str, rule: str | None
) -> None:
    _, api = probe_and_api
    answer = _submit(api, {"scope": XD, "kind": "cross-domain", "sql": sql})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["code"] == "job-rejected"
    assert body["findings"]
    if rule is not None:
        assert {f["rule"] for f in body["findings"]} == {rule}
        assert "supported shape" in body["findings"][0]["message"]


def test_a_join_within_one_domain_is_not_a_cross_domain_job(probe_and_api: tuple[Probe, World]) -> None:
    _, api = probe_and_api
    sql = "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY district"
    answer = _submit(api, {"scope": XD, "kind": "cross-domain", "sql": sql})
    assert answer.status_code == 422, answer.text
    assert "two tables" in answer.json()["findings"][0]["message"]


def test_a_mock_cross_domain_job_is_a_request_error(probe_and_api: tuple[Probe, World]) -> None:
    _, api = probe_and_api
    answer = _submit(api, {"scope": XD, "kind": "cross-domain", "mode": "mock", "sql": SQL})
    assert answer.status_code == 422
    assert answer.json()["code"] == "request-invalid"


def test_the_dry_run_names_the_split(probe_and_api: tuple[Probe, World]) -> None:
    _, api = probe_and_api
    answer = api.client.post(
        "/v1/jobs/check", headers=api.h("alice"), json={"scope": XD, "kind": "cross-domain", "sql": SQL}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["allowed"] is True
    assert "cross_domain_split" in answer.json()["applied"]


def test_sums_under_dominance_rules_are_refused_not_released_unjudged(
    probe_and_api: tuple[Probe, World],
) -> None:
    _, api = probe_and_api
    approve_scope(api, _scope(name="xd-dominance", dominance=True), "xd-dominance")
    answer = _submit(api, {"scope": "xd-dominance", "kind": "cross-domain", "sql": SQL})
    assert answer.status_code == 422, answer.text
    (finding,) = answer.json()["findings"]
    assert "dominance" in finding["message"]
    assert finding["fragment"] == "total"
    counts = SQL.replace(", SUM(b.amount) AS total", "")
    assert _submit(api, {"scope": "xd-dominance", "kind": "cross-domain", "sql": counts}).status_code == 202


def test_a_sql_job_joining_two_domains_never_decrypts_both_in_one_sandbox(
    probe_and_api: tuple[Probe, World],
) -> None:
    """The attack: an operator submits the cross-domain question as a plain ``kind: sql`` job, hoping
    that the gateway hands both domains' tables (and so both data keys) to one sandbox, as it did."""
    probe, api = probe_and_api
    answer = _submit(api, {"scope": XD, "kind": "sql", "sql": SQL})
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    job = api.wait(job_id)
    assert job["state"] == "released", job
    specs = [s for s in probe.specs if s.job_id == job_id or s.job_id.startswith(job_id + "#")]
    assert specs
    for spec in specs:
        assert len({t.domain for t in spec.tables}) == 1, (spec.job_id, [t.domain for t in spec.tables])
    # Routed, not refused: the operator gets the same answer, and the record says how it ran.
    assert answer.json()["kind"] == "cross-domain"
    assert job["applied"][-1] == "cross_domain_split"
    result = result_of(api, job_id)
    assert {row[0]: (row[1], row[2], round(row[3], 2)) for row in result["rows"]} == _oracle()
    assert "cross_domain" in str(receipt_of(api, job_id))
    submitted = [e for e in api.audit_events("job.submitted") if e["details"]["job"] == job_id]
    assert submitted[0]["details"]["kind"] == "cross-domain"
    assert submitted[0]["details"]["requested_kind"] == "sql"


def test_the_dry_run_of_a_sql_job_joining_two_domains_says_it_runs_as_cross_domain(
    probe_and_api: tuple[Probe, World],
) -> None:
    _, api = probe_and_api
    answer = api.client.post(
        "/v1/jobs/check", headers=api.h("alice"), json={"scope": XD, "kind": "sql", "sql": SQL}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["allowed"] is True
    assert body["kind"] == "cross-domain"
    assert body["applied"][-1] == "cross_domain_split"


def test_a_sql_job_joining_two_domains_outside_the_supported_shapes_is_refused_with_them(
    probe_and_api: tuple[Probe, World],
) -> None:
    probe, api = probe_and_api
    before = len(probe.specs)
    outer = SQL.replace(" JOIN ", " LEFT JOIN ")
    dry = api.client.post(
        "/v1/jobs/check", headers=api.h("alice"), json={"scope": XD, "kind": "sql", "sql": outer}
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["allowed"] is False
    assert dry.json()["kind"] == "cross-domain"
    answer = _submit(api, {"scope": XD, "kind": "sql", "sql": outer})
    assert answer.status_code == 422, answer.text
    findings = answer.json()["findings"]
    assert "cross_domain_shape" in {f["rule"] for f in findings}
    assert any("supported shape" in f["message"] for f in findings)
    assert any("kind cross-domain" in f["message"] for f in findings)
    assert len(probe.specs) == before  # nothing ran


def test_a_scope_can_hand_values_over_under_paillier_with_the_same_answers_as_shares(
    probe_and_api: tuple[Probe, World],
) -> None:
    """``cross_domain: {values: paillier}``: the benefits domain encrypts each person's values under its
    own key and decrypts only masked sums; no shares travel to the other domain, and the released
    table is the one the shares give."""
    probe, api = probe_and_api
    # One encryption per person: a row filter keeping a quarter of the payments keeps the test quick.
    grant = f"  {OTHER_DOMAIN}/{BENEFITS}:\n"
    quarter = _scope(name="xd-quarter").replace(grant, grant + '    row_filter: "amount > 1500"\n')
    approve_scope(api, quarter, "xd-quarter")
    paillier = quarter.replace("scope: xd-quarter", "scope: xd-paillier")
    approve_scope(api, paillier + "cross_domain: {values: paillier}\n", "xd-paillier")
    answer = _submit(api, {"scope": "xd-paillier", "kind": "cross-domain", "sql": SQL})
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    shared = _submit(api, {"scope": "xd-quarter", "kind": "cross-domain", "sql": SQL}).json()["job_id"]
    job = api.wait(job_id, timeout_s=300.0)
    assert job["state"] == "released", job["reason"]
    assert api.wait(shared)["state"] == "released"
    rows = result_of(api, job_id)["rows"]
    assert rows
    assert rows == result_of(api, shared)["rows"]
    assert "paillier" in str(receipt_of(api, job_id))
    rounds = {s.job_id: (s, r) for s, r in zip(probe.specs, probe.results, strict=True)}
    for round_id, (spec, result) in rounds.items():
        if not round_id.startswith(job_id + "#"):
            continue
        assert len({t.domain for t in spec.tables}) == 1, round_id
        if round_id.endswith("-blind"):
            to_other = dict(
                zip(
                    result.to_arrow().column("recipient").to_pylist(),
                    result.to_arrow().column("message").to_pylist(),
                    strict=True,
                )
            )["other"]
            assert b'"helper_shares":[]' in to_other  # nothing but tokens goes to the other domain
    # The owner of the summed values answered (decrypting masked sums), not the other domain.
    assert f"{job_id}#right-answer" in rounds or f"{job_id}#left-answer" in rounds
    (answered,) = [rounds[r][0] for r in rounds if r.startswith(job_id + "#") and r.endswith("-answer")]
    assert answered.tables[0].domain == OTHER_DOMAIN  # benefits' own domain


def test_a_sql_job_stored_before_routing_replays_without_one_sandbox_holding_both_domains(
    probe_and_api: tuple[Probe, World], released: dict[str, Any]
) -> None:
    """A job stored as ``kind: sql`` while such jobs still ran in one sandbox (queued across the
    upgrade, or replayed by an auditor later) runs as the cross-domain job it is."""
    probe, api = probe_and_api
    path = api.settings.state_dir / "metadata.db"
    with sqlite3.connect(path) as db:
        db.execute("UPDATE jobs SET kind = 'sql' WHERE id = ?", (released["job_id"],))
    try:
        before = len(probe.specs)
        report = replay(api, released["job_id"])
        assert report["outcome"] == "match", report
        ran = probe.specs[before:]
        assert ran
        for spec in ran:
            assert len({t.domain for t in spec.tables}) == 1, [t.domain for t in spec.tables]
    finally:
        with sqlite3.connect(path) as db:
            db.execute("UPDATE jobs SET kind = 'cross-domain' WHERE id = ?", (released["job_id"],))


PYTHON_SCOPE = "xd-python"
PYTHON_JOIN = """
paid = benefits.merge(citizens, on='person_id')
result = aggregate(paid, by=['district'], aggs={'total': ('amount', 'sum')})
"""


def _python_scope(api: World) -> str:
    document = _scope(name=PYTHON_SCOPE) + "python: {allowed: true, modules: [pandas, numpy]}\n"
    approve_scope(api, document, PYTHON_SCOPE)
    return PYTHON_SCOPE


def _python(api: World, code: str, *, check: bool = False) -> Any:
    body = {"scope": _python_scope(api), "kind": "python", "mode": "real", "code": code}
    return api.client.post("/v1/jobs/check" if check else "/v1/jobs", headers=api.h("alice"), json=body)


def test_a_python_job_joining_two_domains_never_decrypts_both_in_one_sandbox(
    probe_and_api: tuple[Probe, World],
) -> None:
    """The attack: an operator asks the cross-domain question as Python, under a scope that names both
    domains, hoping that the gateway hands every table the scope grants (and so both domains' data
    keys) to one sandbox, as it did before Python jobs were planned by the tables they read."""
    probe, api = probe_and_api
    before = len(probe.specs)
    answer = _python(api, PYTHON_JOIN)
    if answer.status_code == 202:
        api.wait(answer.json()["job_id"])
    for spec in probe.specs[before:]:
        assert len({t.domain for t in spec.tables}) <= 1, (spec.job_id, [t.domain for t in spec.tables])
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "job-rejected"
    (finding,) = answer.json()["findings"]
    assert finding["rule"] == "python_one_domain"
    assert "reads one domain's tables" in finding["message"]
    assert "as SQL" in finding["message"]
    assert "private join" in finding["message"]
    assert "split it" in finding["message"]
    assert len(probe.specs) == before  # nothing ran


def test_the_dry_run_of_a_python_job_joining_two_domains_refuses_it(
    probe_and_api: tuple[Probe, World],
) -> None:
    _, api = probe_and_api
    answer = _python(api, PYTHON_JOIN, check=True)
    assert answer.status_code == 200, answer.text
    assert answer.json()["allowed"] is False
    assert [f["rule"] for f in answer.json()["findings"]] == ["python_one_domain"]


@pytest.mark.parametrize(
    "code",
    [
        # Every table, by names the gateway cannot know before the code runs.
        "frames = list(tables.values())\nresult = len(frames)",
        "name = 'citi' + 'zens'\nresult = len(tables[name]) + len(benefits)",
        "alias = tables\nresult = len(alias['benefits'])",
    ],
)
def test_a_python_job_reading_tables_by_computed_names_counts_as_reading_both_domains(
    probe_and_api: tuple[Probe, World], code: str
) -> None:
    _, api = probe_and_api
    answer = _python(api, code)
    assert answer.status_code == 422, answer.text
    (finding,) = answer.json()["findings"]
    assert finding["rule"] == "python_one_domain"
    assert "every table" in finding["message"]


def test_a_python_job_reading_one_domain_gets_only_that_domains_tables_and_replays(
    probe_and_api: tuple[Probe, World],
) -> None:
    probe, api = probe_and_api
    code = "result = aggregate(tables['citizens'], by='district', aggs={'n': ('district', 'count')})"
    answer = _python(api, code)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    job = api.wait(job_id)
    assert job["state"] == "released", (job["state"], job.get("reason"))
    (spec,) = [s for s in probe.specs if s.job_id == job_id]
    assert [(t.domain, t.sql_name) for t in spec.tables] == [(DOMAIN, DATASET)]
    assert spec.python_or_mock is not None
    assert [q.name for q in spec.python_or_mock.inputs] == [DATASET]
    assert list(job["dataset_versions"]) == [f"{DOMAIN}/{DATASET}"]
    before = len(probe.specs)
    report = replay(api, job_id)
    assert report["outcome"] == "match", report
    (again,) = probe.specs[before:]
    assert [(t.domain, t.sql_name) for t in again.tables] == [(DOMAIN, DATASET)]


def test_a_mock_python_job_joining_two_domains_runs_on_the_twins_with_the_real_mode_advice(
    probe_and_api: tuple[Probe, World],
) -> None:
    probe, api = probe_and_api
    body = {"scope": _python_scope(api), "kind": "python", "mode": "mock", "code": PYTHON_JOIN}
    answer = api.client.post("/v1/jobs/check", headers=api.h("alice"), json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["allowed"] is True
    (advice,) = answer.json()["findings"]
    assert advice["rule"] == "python_one_domain"
    assert advice["message"].startswith("in real mode: ")
    submitted = _submit(api, body)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    assert api.wait(job_id)["state"] == "released"
    assert all(not s.tables for s in probe.specs if s.job_id == job_id)  # twins: no data key


def test_a_python_job_stored_with_both_domains_tables_is_not_replayed_in_one_sandbox(
    probe_and_api: tuple[Probe, World],
) -> None:
    """A Python job recorded with code that reads both domains (stored before this check, here forged
    in the store) is not rebuilt into a sandbox holding both domains' tables."""
    probe, api = probe_and_api
    code = "result = aggregate(citizens, by='district', aggs={'n': ('district', 'count')})"
    answer = _python(api, code)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    assert api.wait(job_id)["state"] == "released"
    path = api.settings.state_dir / "metadata.db"
    with sqlite3.connect(path) as db:
        db.execute("UPDATE jobs SET code = ? WHERE id = ?", (PYTHON_JOIN, job_id))
    try:
        before = len(probe.specs)
        report = api.client.post(f"/v1/jobs/{job_id}/replay", headers=api.h("audra")).json()
        assert report["outcome"] != "match", report
        assert "python_one_domain" in report["message"]
        assert len(probe.specs) == before
    finally:
        with sqlite3.connect(path) as db:
            db.execute("UPDATE jobs SET code = ? WHERE id = ?", (code, job_id))
