"""Red team over HTTP: an untrusted operator (and curious stewards and officers) against a real gateway.

One gateway for the module: ``sandbox serve`` in a subprocess on a free loopback port over a temporary
state directory, seeded through the public client with a small copy of the demo data (3,000 citizens,
12,000 visits; seed 3 has one person earning far above the scope's income bound, one patient with a rare
diagnosis and a six-person district). Every test asserts the *safe* behaviour, so a test fails when the
service is unsafe. Every response body any test receives is scanned for the fixture's raw identifiers
(national IDs, phones, names, person ids, top incomes): a hit anywhere fails the test that received it.

Cross-query differencing is a known limitation of k-thresholds: the test for it only asserts what the
scope still guarantees (aggregate bounds), not that two queries cannot be subtracted.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pytest

from crypto.audit import AuditEntry, verify_chain
from sandbox_api.cli import demo, demo_data
from sandbox_api.client.api_client import SandboxClient
from sandbox_api.server.bootstrap import init_deployment
from sandbox_api.server.settings import Settings
from tests.sandbox_api.api_helpers import parquet_bytes
from tests.sandbox_api.live_gateway import serve_gateway
from tests.sandbox_api.replay_helpers import replay_live

CITIZENS = 3_000
VISITS = 12_000
SEED = 3  # this seed's register holds a fortune far above the income bound and a one-patient diagnosis
SCOPE = demo_data.DEMO_SCOPE_NAME
K = 10  # the demo scope's min_units
INCOME_BOUND = 1_000_000.0
TINY = "Lighthouse Island"  # six residents: below k by construction
UPLOAD_CAP_MB = 1
TERMINAL = {"released", "rejected", "failed", "cancelled", "expired", "denied", "withheld"}
PROBLEM = "application/problem+json"


# --- what must never come back -----------------------------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    """Raw values of the fixture that no response may carry, with cheap scanners for each kind."""

    national_ids: frozenset[str]
    phones: frozenset[str]
    names: frozenset[str]
    person_ids: frozenset[str]
    top_incomes: frozenset[str]

    @classmethod
    def of(cls, citizens: pd.DataFrame) -> Secrets:
        rich = citizens["income"][citizens["income"] > 300_000].astype(float)
        return cls(
            national_ids=frozenset(map(str, citizens["national_id"])),
            phones=frozenset(map(str, citizens["phone"])),
            names=frozenset(map(str, citizens["name"])),
            person_ids=frozenset(map(str, citizens["person_id"])),
            top_incomes=frozenset(f"{value:.2f}" for value in rich) | frozenset(repr(v) for v in rich),
        )

    def found_in(self, text: str) -> list[str]:
        hits: list[str] = []
        hits += [
            t
            for t in re.findall(r"(?<![0-9A-Za-z])\d{17}[0-9X](?![0-9A-Za-z])", text)
            if t in self.national_ids
        ]
        hits += [t for t in re.findall(r"(?<![0-9A-Za-z])1\d{10}(?![0-9A-Za-z])", text) if t in self.phones]
        hits += [t for t in re.findall(r'"([A-Z][a-z]+ [A-Z][a-z]+)"', text) if t in self.names]
        hits += [
            t for t in re.findall(r"(?<![0-9A-Za-z])P\d{7}(?![0-9A-Za-z])", text) if t in self.person_ids
        ]
        hits += [t for t in re.findall(r"\d+\.\d+", text) if t in self.top_incomes]
        return hits


@dataclass
class Target:
    url: str
    tokens: dict[str, str]
    state_dir: Path
    citizens: pd.DataFrame
    visits: pd.DataFrame
    secrets: Secrets
    scopes: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (scope name, version)
    released_job: str = ""

    def as_(self, who: str) -> Attacker:
        return Attacker(self, self.tokens[who])

    def anonymous(self, headers: Mapping[str, str] | None = None) -> Attacker:
        return Attacker(self, None, headers=headers)


class Attacker:
    """An HTTP client whose every answer is scanned for raw values before the test sees it."""

    def __init__(
        self, target: Target, token: str | None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        base = {} if token is None else {"Authorization": f"Bearer {token}"}
        self.target = target
        self.http = httpx.Client(
            base_url=target.url,
            headers={**base, **(headers or {})},
            timeout=60,
            event_hooks={"response": [self._scan]},
        )

    def _scan(self, response: httpx.Response) -> None:
        response.read()
        leaked = self.target.secrets.found_in(response.text)
        assert not leaked, f"{response.request.method} {response.request.url.path} leaked {leaked[:5]}"

    def __enter__(self) -> Attacker:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, **kw)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, path, **kw)

    def submit(self, sql: str, *, scope: str = SCOPE) -> httpx.Response:
        return self.post("/v1/jobs", json={"scope": scope, "sql": sql})

    def check(self, sql: str, *, scope: str = SCOPE) -> dict[str, Any]:
        answer = self.post("/v1/jobs/check", json={"scope": scope, "sql": sql})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def outcome(self, sql: str, *, scope: str = SCOPE) -> Outcome:
        """Submit, wait, and read what an operator can observe: the final state and the released rows."""
        answer = self.submit(sql, scope=scope)
        if answer.status_code != 202:
            return Outcome(state=f"http-{answer.status_code}", reason=str(answer.json().get("code")))
        job_id = answer.json()["job_id"]
        deadline = time.monotonic() + 60
        while True:
            job = self.get(f"/v1/jobs/{job_id}").json()
            if job["state"] in TERMINAL:
                break
            assert time.monotonic() < deadline, f"job {job_id} stuck in {job['state']}"
            time.sleep(0.03)
        if job["state"] != "released":
            return Outcome(state=job["state"], reason=job["reason"], job_id=job_id)
        result = self.get(f"/v1/jobs/{job_id}/result").json()
        return Outcome(
            state="released",
            reason="",
            job_id=job_id,
            columns=tuple(result["columns"]),
            rows=tuple(sorted(tuple(map(str, row)) for row in result["rows"])),
            report=result["report"],
        )


@dataclass(frozen=True)
class Outcome:
    state: str
    reason: str
    job_id: str = ""
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    report: Mapping[str, Any] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.rows), columns=list(self.columns))

    def observable(self) -> tuple[object, ...]:
        """Everything an operator sees of a job, minus its id and timings."""
        report = {k: v for k, v in self.report.items()}
        return (self.state, self.reason, self.columns, self.rows, json.dumps(report, sort_keys=True))


# --- the gateway -------------------------------------------------------------------------------------


def _serve(state_dir: Path) -> contextlib.AbstractContextManager[str]:
    """``sandbox serve`` with a small upload cap (so oversize uploads stay cheap)."""
    return serve_gateway(
        state_dir, settings={"SANDBOX_MAX_UPLOAD_MB": str(UPLOAD_CAP_MB), "SANDBOX_N_PARTS": "2"}
    )


def _scope_doc(name: str, *, grantees: str = "[operator:alice]", valid_from: date, valid_until: date) -> str:
    text = demo_data.demo_scope_yaml(valid_from=valid_from, valid_until=valid_until)
    text = text.replace(f"scope: {SCOPE}", f"scope: {name}")
    return re.sub(r"^grantees: .*$", f"grantees: {grantees}", text, count=1, flags=re.MULTILINE)


def _extra_scopes(target: Target) -> None:
    """Scopes in every state an operator must not be able to use, plus one that names an officer."""
    today = date.today()
    plans = {
        "pending": ("rt-pending", "[operator:alice]", today - timedelta(days=1), today + timedelta(days=400)),
        "expired": ("rt-expired", "[operator:alice]", date(2020, 1, 1), date(2020, 12, 31)),
        "future": ("rt-future", "[operator:alice]", today + timedelta(days=30), today + timedelta(days=400)),
        "revoked": ("rt-revoked", "[operator:alice]", today - timedelta(days=1), today + timedelta(days=400)),
        "rejected": (
            "rt-rejected",
            "[operator:alice]",
            today - timedelta(days=1),
            today + timedelta(days=400),
        ),
        "not-granted": (
            "rt-bob-only",
            "[operator:bob]",
            today - timedelta(days=1),
            today + timedelta(days=400),
        ),
        "grants-officer": (
            "rt-for-peter",
            "[operator:peter]",
            today - timedelta(days=1),
            today + timedelta(days=400),
        ),
    }
    olga, peter = target.tokens["olga"], target.tokens["peter"]
    with httpx.Client(base_url=target.url, timeout=60) as http:
        for label, (name, grantees, start, end) in plans.items():
            doc = _scope_doc(name, grantees=grantees, valid_from=start, valid_until=end)
            made = http.post("/v1/scopes", headers=_bearer(olga), json={"document": doc, "format": "yaml"})
            assert made.status_code == 201, made.text
            version = made.json()["version"]["version_id"]
            target.scopes[label] = (name, version)
            base = f"/v1/scopes/{name}/versions/{version}"
            if label in {"expired", "future", "revoked", "not-granted"}:
                assert http.post(base + "/approve", headers=_bearer(peter), json={}).status_code == 200
            if label == "revoked":
                assert (
                    http.post(base + "/revoke", headers=_bearer(olga), json={"reason": "rt"}).status_code
                    == 200
                )
            if label == "rejected":
                assert (
                    http.post(base + "/reject", headers=_bearer(peter), json={"reason": "rt"}).status_code
                    == 200
                )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    state_dir = tmp_path_factory.mktemp("redteam") / "state"
    admin_token = init_deployment(Settings(state_dir=state_dir)).admin_token
    assert admin_token is not None
    citizens, visits = demo_data.demo_datasets(citizens_n=CITIZENS, visits_n=VISITS, seed=SEED)
    with _serve(state_dir) as url, SandboxClient(url, admin_token, timeout=120) as admin:
        cast = demo.provision(
            admin,
            admin_token=admin_token,
            citizens_n=CITIZENS,
            visits_n=VISITS,
            seed=SEED,
            today=date.today(),
            say=lambda _line: None,
            progress=False,
        )
        tokens = dict(cast.tokens)
        tokens["bob"] = admin.create_principal("bob", "operator").token
        found = Target(
            url=url,
            tokens=tokens,
            state_dir=state_dir,
            citizens=citizens.frame,
            visits=visits.frame,
            secrets=Secrets.of(citizens.frame),
        )
        _extra_scopes(found)
        with found.as_("alice") as alice:
            first = alice.outcome(demo.FLU_BY_DISTRICT)
        assert first.state == "released", first
        found.released_job = first.job_id
        yield found
        # Whatever the attacks got released, an auditor's replay reproduces it byte for byte.
        replay_live(url, tokens["audrey"])


def _problem(answer: httpx.Response, *statuses: int) -> dict[str, Any]:
    """A clear refusal: one of ``statuses``, problem+json with a stable code and a human detail."""
    assert answer.status_code in statuses, (answer.status_code, answer.text[:500])
    assert answer.headers.get("content-type", "").startswith(PROBLEM), answer.headers.get("content-type")
    body: dict[str, Any] = answer.json()
    assert body["status"] == answer.status_code
    assert body["code"]
    assert body["type"] == f"urn:sandbox:{body['code']}"
    assert body["detail"]
    return body


def _state(target: Target) -> dict[str, Any]:
    """Everything a refusal must leave alone, as the admin, stewards, officers and auditors list it."""
    with httpx.Client(base_url=target.url, timeout=60) as http:
        t = target.tokens

        def listing(path: str, who: str) -> Any:
            answer = http.get(path, headers=_bearer(t[who]))
            assert answer.status_code == 200, answer.text
            return answer.json()

        jobs = listing("/v1/jobs?limit=1000", "audrey")["jobs"]
        return {
            "domains": listing("/v1/domains", "admin"),
            "principals": listing("/v1/principals", "admin"),
            "citizens": listing("/v1/datasets", "carol"),
            "visits": listing("/v1/datasets", "hank"),
            "scopes": [
                (s["name"], [(v["version_id"], v["state"], v["approvals"]) for v in s["versions"]])
                for s in listing("/v1/scopes", "olga")
            ],
            "live_jobs": sorted(j["job_id"] for j in jobs if j["state"] not in {"rejected"}),
            "files": sorted(
                str(p.relative_to(target.state_dir)) for p in (target.state_dir / "data").rglob("*")
            ),
        }


# =====================================================================================================
# 1. Disclosure through released results
# =====================================================================================================


def test_rare_diagnoses_are_released_only_for_k_patients(target: Target) -> None:
    patients = target.visits.groupby("diagnosis")["person_id"].nunique()  # visits carry no row filter
    rare = set(patients[patients < K].index.astype(str))
    assert rare, "the fixture must hold a diagnosis with fewer than k patients"
    with target.as_("alice") as alice:
        out = alice.outcome(demo.RARE_DIAGNOSES)
    assert out.state == "released", out
    released = out.frame()
    assert not set(released["diagnosis"]) & rare
    for _, row in released.iterrows():
        assert int(row["patients"]) == patients[row["diagnosis"]] >= K
    assert "rows_dropped" not in out.report  # how many rare diagnoses fell is for auditors only


def test_group_by_near_unique_columns_never_releases_a_small_group(target: Target) -> None:
    sql = (
        "SELECT c.district, c.sex, c.birth_date AS decade, COUNT(*) AS people "
        "FROM citizens c GROUP BY c.district, c.sex, c.birth_date"
    )
    with target.as_("alice") as alice:
        out = alice.outcome(sql)
    assert out.state == "released", out
    people = target.citizens[target.citizens["district"] != "Military Zone"].copy()
    people["decade"] = [d.year // 10 * 10 for d in people["birth_date"]]
    sizes = people.groupby(["district", "sex", "decade"]).size()
    assert (sizes < K).any()
    for _, row in out.frame().iterrows():
        decade = int(str(row["decade"])[:4])
        assert decade % 10 == 0, row["decade"]
        assert sizes[(row["district"], row["sex"], decade)] >= K
        assert int(row["people"]) >= K
    assert "rows_dropped" not in out.report


def _all(pattern: str) -> Any:
    return lambda values: all(re.fullmatch(pattern, str(v)) for v in values)


MASK_PROBES: dict[str, tuple[str, Any]] = {
    "year": ("SELECT year(birth_date) AS v, COUNT(*) AS n FROM citizens GROUP BY v", _all(r"\d{3}0")),
    "month": ("SELECT month(birth_date) AS v, COUNT(*) AS n FROM citizens GROUP BY v", _all("1")),
    "day": ("SELECT day(birth_date) AS v, COUNT(*) AS n FROM citizens GROUP BY v", _all("1")),
    "doy": ("SELECT dayofyear(birth_date) AS v, COUNT(*) AS n FROM citizens GROUP BY v", _all("1")),
    "plus-a-day": (
        "SELECT birth_date + INTERVAL 1 DAY AS v, COUNT(*) AS n FROM citizens GROUP BY v",
        _all(r"\d{3}0-01-02.*"),
    ),
    "strftime": (
        "SELECT strftime(birth_date, '%Y-%m-%d') AS v, COUNT(*) AS n FROM citizens GROUP BY v",
        _all(r"\d{3}0-01-01"),
    ),
    "as-text": (
        "SELECT CAST(birth_date AS VARCHAR) AS v, COUNT(*) AS n FROM citizens GROUP BY v",
        _all(r"\d{3}0-01-01.*"),
    ),
    "date-diff": (
        "SELECT date_diff('day', birth_date, DATE '2025-01-01') AS v, COUNT(*) AS n FROM citizens GROUP BY v",
        lambda values: len(set(values)) <= 12,
    ),
    "where-half-decade": (
        "SELECT sex AS v, COUNT(*) AS n FROM citizens "
        "WHERE birth_date >= DATE '1975-01-01' AND birth_date < DATE '1980-01-01' GROUP BY sex",
        lambda values: len(values) == 0,  # every masked birth date is a decade start: nothing is in 1975-79
    ),
    "visit-day": ("SELECT day(visit_date) AS v, COUNT(*) AS n FROM visits GROUP BY v", _all("1")),
}


@pytest.mark.parametrize("probe", sorted(MASK_PROBES))
def test_masked_dates_never_come_out_finer_than_their_mask(target: Target, probe: str) -> None:
    sql, coarse_enough = MASK_PROBES[probe]
    with target.as_("alice") as alice:
        out = alice.outcome(sql)
    if out.state != "released":
        return  # refused or failed: nothing finer than the mask came out either
    values = [row[0] for row in out.rows]
    assert coarse_enough(values), values[:20]


DENIED_OR_SMUGGLING = [
    # denied columns, however they are spelled
    "SELECT name, COUNT(*) AS n FROM citizens GROUP BY name",
    'SELECT "NAME", COUNT(*) AS n FROM citizens GROUP BY "NAME"',
    'SELECT "Name" AS x, COUNT(*) AS n FROM citizens GROUP BY 1',
    "SELECT citizens.national_id AS x, COUNT(*) AS n FROM citizens GROUP BY 1",
    "SELECT sex, COUNT(*) AS n FROM citizens WHERE national_id LIKE '110117%' GROUP BY sex",
    "SELECT sex, COUNT(*) AS n FROM citizens WHERE phone > '15' GROUP BY sex",
    "SELECT length(name) AS l, COUNT(*) AS n FROM citizens GROUP BY l",
    "SELECT substr(phone, 1, 3) AS p, COUNT(*) AS n FROM citizens GROUP BY p",
    "SELECT sex, COUNT(DISTINCT name) AS n FROM citizens GROUP BY sex",
    "SELECT sex, COUNT(*) AS n FROM citizens WHERE /* harmless */ nam\u0435 = 'x' GROUP BY sex",
    "SELECT sex, COUNT(*) AS n FROM citizens WHERE \"name\u200b\" = 'x' GROUP BY sex",
    "SELECT sex, COUNT(*) AS n FROM visits WHERE visit_id = 'V000000001' GROUP BY sex",
    # the unit
    "SELECT person_id, COUNT(*) AS n FROM citizens GROUP BY person_id",
    "SELECT sex, COUNT(*) AS n FROM citizens WHERE person_id = 'P9999999' GROUP BY sex",
    "SELECT sex, COUNT(*) AS n FROM citizens WHERE person_id < 'P9999990' GROUP BY sex",
    "SELECT CASE WHEN person_id = 'P9999999' THEN 'x' ELSE 'y' END AS g, COUNT(*) AS n "
    "FROM citizens GROUP BY g",
    # raw values smuggled through aggregates
    "SELECT district, MAX(income) AS m FROM citizens GROUP BY district",
    "SELECT district, MIN(income) AS m FROM citizens GROUP BY district",
    "SELECT district, ANY_VALUE(income) AS m FROM citizens GROUP BY district",
    "SELECT district, ARG_MAX(sex, income) AS m FROM citizens GROUP BY district",
    "SELECT district, STRING_AGG(name, ',') AS m FROM citizens GROUP BY district",
    "SELECT district, LIST(income) AS m FROM citizens GROUP BY district",
    "SELECT district, QUANTILE_CONT(income, 0.999) AS m FROM citizens GROUP BY district",
    "SELECT district, MODE(income) AS m FROM citizens GROUP BY district",
    "SELECT district, FIRST(phone) AS m FROM citizens GROUP BY district",
    # row-level output
    "SELECT * FROM citizens",
    "SELECT c.* FROM citizens c",
    "SELECT c FROM citizens c",
    "SELECT to_json(c) AS j, COUNT(*) AS n FROM citizens c GROUP BY j",
    "SELECT COLUMNS(*) FROM citizens",
    "SELECT income FROM citizens ORDER BY income DESC LIMIT 1",
    "SELECT district, SUM(income) OVER (PARTITION BY district) AS s FROM citizens",
    "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district UNION ALL SELECT name, 1 FROM citizens",
    "WITH raw AS (SELECT name, income FROM citizens) SELECT name, COUNT(*) AS n FROM raw GROUP BY name",
    "SELECT d, COUNT(*) AS n FROM (SELECT national_id AS d FROM citizens) t GROUP BY d",
    # reaching around the analysis
    "SELECT * FROM query('SELECT name FROM citizens')",
    "SELECT * FROM query_table('citizens')",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT sex, COUNT(*) AS n FROM citizens GROUP BY #1",
    "SELECT sbx_keyed_hash(name) AS h, COUNT(*) AS n FROM citizens GROUP BY h",
    "SELECT sex, COUNT(*) AS _sbx_units FROM citizens GROUP BY sex",
    "PRAGMA database_list",
    "SET enable_external_access = true",
    "ATTACH 'x.db' AS x",
    "COPY citizens TO 'x.csv'",
    "INSTALL httpfs",
    "CREATE TABLE t AS SELECT * FROM citizens",
    "SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex; SELECT name FROM citizens",
    "SELECT sex, COUNT(*) AS n FROM citizens GROUP BY sex; DROP TABLE citizens",
]


@pytest.mark.parametrize("sql", DENIED_OR_SMUGGLING)
def test_queries_that_reach_protected_values_are_refused(target: Target, sql: str) -> None:
    with target.as_("alice") as alice:
        report = alice.check(sql)
        assert report["allowed"] is False, report["rewritten_sql"]
        assert report["findings"]
        assert all(f["rule"] and f["message"] for f in report["findings"])
        problem = _problem(alice.submit(sql), 422)
    assert problem["code"] == "job-rejected"
    assert problem["state"] == "rejected"


INCOME_EXPRESSIONS: dict[str, Any] = {
    "income": lambda x: x,
    "income / 1000000": lambda x: x / 1_000_000,
    "income * 0.001": lambda x: x * 0.001,
    "income - 1000000": lambda x: x - 1_000_000,
    "-income": lambda x: -x,
    "income + income": lambda x: x + x,
}


@pytest.mark.parametrize("expression", sorted(INCOME_EXPRESSIONS))
def test_income_bounds_clip_every_person_whatever_the_expression(target: Target, expression: str) -> None:
    """SUM over an expression of income must use the income clipped to the scope's bounds first."""
    people = target.citizens[target.citizens["district"] != "Military Zone"]
    richest = people.sort_values("income").iloc[-1]
    assert richest["income"] > 5 * INCOME_BOUND, "the fixture must hold a fortune above the bound"
    sql = f"SELECT district, SUM({expression}) AS s, COUNT(*) AS n FROM citizens GROUP BY district"
    with target.as_("alice") as alice:
        out = alice.outcome(sql)
    if out.state != "released":
        return  # refusing the expression is safe too
    released = {row[0]: float(row[1]) for row in out.rows}
    clipped = people.assign(income=people["income"].clip(0, INCOME_BOUND))
    group = clipped[clipped["district"] == richest["district"]]["income"].astype(float)
    expected = float(INCOME_EXPRESSIONS[expression](group).sum())
    assert released[str(richest["district"])] == pytest.approx(expected, rel=1e-6, abs=1e-3)


def test_avg_of_a_group_with_a_fortune_stays_within_the_bounds(target: Target) -> None:
    people = target.citizens[target.citizens["district"] != "Military Zone"]
    richest = people.sort_values("income").iloc[-1]
    sql = "SELECT district, sex, AVG(income) AS a, COUNT(income) AS n FROM citizens GROUP BY district, sex"
    with target.as_("alice") as alice:
        out = alice.outcome(sql)
    assert out.state == "released", out
    for district, sex, avg, n in out.rows:
        assert float(avg) <= INCOME_BOUND
        if (district, sex) == (richest["district"], richest["sex"]):
            group = people[(people["district"] == district) & (people["sex"] == sex)]
            assert float(avg) == pytest.approx(group["income"].clip(0, INCOME_BOUND).mean(), rel=1e-6)
            assert int(n) == len(group)


def test_differencing_two_allowed_queries_learns_at_most_a_clipped_income(target: Target) -> None:
    """Known limitation of k-thresholds: SUM over a group minus SUM over the group without a few people.

    Both queries pass (each group has >= k people), so their difference is the income of the people
    removed (the richest person's sex and birth decade in their district); what the scope still
    guarantees is that each of them comes out clipped to the bound, so the fortune itself stays hidden.
    """
    people = target.citizens[target.citizens["district"] != "Military Zone"]
    richest = people.sort_values("income").iloc[-1]
    decade = richest["birth_date"].year // 10 * 10
    district, sex = str(richest["district"]), str(richest["sex"])
    removed = people[
        (people["district"] == district)
        & (people["sex"] == sex)
        & (people["birth_date"].map(lambda d: d.year // 10 * 10) == decade)
    ]
    whole = f"SELECT district, SUM(income) AS s FROM citizens WHERE district = '{district}' GROUP BY district"
    without = (
        f"SELECT district, SUM(income) AS s FROM citizens WHERE district = '{district}' "
        f"AND NOT (sex = '{sex}' AND birth_date = DATE '{decade}-01-01') GROUP BY district"
    )
    with target.as_("alice") as alice:
        first, second = alice.outcome(whole), alice.outcome(without)
    assert first.state == "released", first
    if second.state != "released" or not second.rows:
        return  # the second query was refused or suppressed: differencing failed
    difference = float(first.rows[0][1]) - float(second.rows[0][1])
    assert difference == pytest.approx(float(removed["income"].clip(0, INCOME_BOUND).sum()), rel=1e-6)
    assert difference < float(richest["income"])


def test_filter_clause_over_a_tiny_subset_is_not_released(target: Target) -> None:
    sql = (
        "SELECT sex, COUNT(*) AS n, COUNT(*) FILTER (WHERE district = 'Lighthouse Island') AS tiny, "
        "SUM(income) FILTER (WHERE district = 'Lighthouse Island') AS tiny_income "
        "FROM citizens GROUP BY sex"
    )
    with target.as_("alice") as alice:
        out = alice.outcome(sql)
    for row in out.rows:
        cells = dict(zip(out.columns, row, strict=True))
        assert cells["tiny"] in {"None", "nan", "<NA>"} or int(float(cells["tiny"])) >= K, cells
        assert cells["tiny_income"] in {"None", "nan", "<NA>"}, cells


def _tiny_group_diagnoses(target: Target) -> tuple[str, str]:
    """One diagnosis some resident of the tiny district has (one patient), and one none of them has."""
    joined = target.visits.merge(target.citizens, on="person_id")
    tiny = joined[joined["district"] == TINY].groupby("diagnosis")["person_id"].nunique()
    present = sorted(str(d) for d, n in tiny.items() if n == 1)
    everywhere = set(map(str, joined["diagnosis"]))
    absent = sorted(everywhere - set(map(str, tiny.index)))
    assert present, "the fixture must give the tiny district a one-patient diagnosis"
    assert absent
    return present[0], absent[0]


RAISERS = [
    "CAST('x' AS INTEGER)",
    "CAST(9223372036854775807 AS BIGINT) + 1",
    "CAST(1e400 AS DOUBLE)::INTEGER",
]


@pytest.mark.parametrize("raiser", RAISERS)
def test_a_runtime_error_is_not_a_membership_oracle(target: Target, raiser: str) -> None:
    """Does the one resident of a six-person district have diagnosis D? A job must not answer by failing.

    The query releases only two big groups (by sex), but raises an engine error iff a row of the tiny
    group matches: the job's final state then says whether that person has the diagnosis.
    """
    present, absent = _tiny_group_diagnoses(target)
    template = (
        "SELECT c.sex, COUNT(*) AS n FROM visits v JOIN citizens c ON v.person_id = c.person_id "
        "WHERE CASE WHEN c.district = '{tiny}' AND v.diagnosis = '{d}' THEN {raiser} ELSE 1 END = 1 "
        "GROUP BY c.sex"
    )
    with target.as_("alice") as alice:
        yes = alice.outcome(template.format(tiny=TINY, d=present, raiser=raiser))
        no = alice.outcome(template.format(tiny=TINY, d=absent, raiser=raiser))
    assert yes.state == no.state, (yes.state, yes.reason, no.state, no.reason)


@pytest.mark.parametrize(
    "gate",
    [
        "EXISTS (SELECT 1 FROM visits v JOIN citizens c2 ON v.person_id = c2.person_id "
        "WHERE c2.district = '{tiny}' AND v.diagnosis = '{d}')",
        "NOT EXISTS (SELECT 1 FROM visits v JOIN citizens c2 ON v.person_id = c2.person_id "
        "WHERE c2.district = '{tiny}' AND v.diagnosis = '{d}')",
        "'x' IN (SELECT 'x' FROM visits v JOIN citizens c2 ON v.person_id = c2.person_id "
        "WHERE c2.district = '{tiny}' AND v.diagnosis = '{d}')",
    ],
)
def test_an_uncorrelated_subquery_gate_is_not_a_membership_oracle(target: Target, gate: str) -> None:
    """Big groups released or not depending on whether one person of a tiny group has a diagnosis."""
    present, absent = _tiny_group_diagnoses(target)
    template = "SELECT c.sex, COUNT(*) AS n FROM citizens c WHERE " + gate + " GROUP BY c.sex"
    with target.as_("alice") as alice:
        yes = alice.outcome(template.format(tiny=TINY, d=present))
        no = alice.outcome(template.format(tiny=TINY, d=absent))
    assert yes.observable() == no.observable(), (yes.rows, no.rows)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT c.sex, COUNT(*) AS n FROM visits v JOIN citizens c ON v.person_id = c.person_id "
        "GROUP BY c.sex "
        "HAVING COUNT(*) FILTER (WHERE c.district = '{tiny}' AND v.diagnosis = '{d}') > 0",
        "SELECT c.sex, COUNT(*) AS n FROM visits v JOIN citizens c ON v.person_id = c.person_id "
        "GROUP BY c.sex "
        "HAVING SUM(CASE WHEN c.district = '{tiny}' AND v.diagnosis = '{d}' THEN 1 ELSE 0 END) > 0",
        "SELECT c.sex, COUNT(*) + MAX(CASE WHEN c.district = '{tiny}' AND v.diagnosis = '{d}' THEN 1000 "
        "ELSE 0 END) AS n FROM visits v JOIN citizens c ON v.person_id = c.person_id GROUP BY c.sex",
        "SELECT c.sex, COUNT(*) AS n FROM citizens c WHERE (SELECT COUNT(*) FROM visits v JOIN citizens c2 "
        "ON v.person_id = c2.person_id WHERE c2.district = '{tiny}' AND v.diagnosis = '{d}') > 0 "
        "GROUP BY c.sex",
        "WITH t AS (SELECT COUNT(*) AS k FROM visits v JOIN citizens c2 ON v.person_id = c2.person_id "
        "WHERE c2.district = '{tiny}' AND v.diagnosis = '{d}') "
        "SELECT c.sex, COUNT(*) AS n FROM citizens c JOIN t ON t.k > 0 GROUP BY c.sex",
        "SELECT c.sex, COUNT(*) AS n FROM citizens c GROUP BY c.sex ORDER BY COUNT(*) FILTER "
        "(WHERE c.district = '{tiny}') DESC LIMIT 1",
    ],
)
def test_having_and_conditional_aggregates_over_a_tiny_subset_are_not_oracles(
    target: Target, sql: str
) -> None:
    present, absent = _tiny_group_diagnoses(target)
    with target.as_("alice") as alice:
        yes = alice.outcome(sql.format(tiny=TINY, d=present))
        no = alice.outcome(sql.format(tiny=TINY, d=absent))
    assert (yes.state, yes.rows) == (no.state, no.rows), (yes, no)


def test_the_suppression_report_does_not_say_whether_a_tiny_group_exists(target: Target) -> None:
    """A released result, report included, must not differ on whether 1..k-1 people match a filter.

    rows_in / rows_dropped count suppressed groups: filtering the tiny district on a diagnosis yields
    one suppressed row when its one patient has it and none otherwise.
    """
    present, absent = _tiny_group_diagnoses(target)
    template = (
        "SELECT c.district, COUNT(DISTINCT c.person_id) AS n FROM visits v JOIN citizens c "
        "ON v.person_id = c.person_id WHERE c.district = '{tiny}' AND v.diagnosis = '{d}' GROUP BY c.district"
    )
    with target.as_("alice") as alice:
        yes = alice.outcome(template.format(tiny=TINY, d=present))
        no = alice.outcome(template.format(tiny=TINY, d=absent))
    assert yes.state == no.state == "released"
    assert yes.rows == no.rows == ()
    assert yes.report == no.report, (yes.report, no.report)


def test_no_listing_or_log_ever_carries_a_raw_identifier(target: Target) -> None:
    """Every listing, every job (failed ones with their reasons) and the whole audit log, scanned."""
    with target.as_("alice") as alice:
        broken = alice.outcome(
            "SELECT district, COUNT(*) AS n FROM citizens "
            "WHERE CAST(district || 'x' AS INTEGER) > 0 GROUP BY district"
        )
        assert broken.state in {"failed", "http-422"}, broken
    with target.as_("audrey") as auditor, target.as_("alice") as alice, target.as_("admin") as admin:
        export = auditor.get("/v1/audit/export")
        assert export.status_code == 200
        jobs = auditor.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]
        for path in ("/v1/datasets", "/v1/scopes", "/v1/domains"):
            assert alice.get(path).status_code == 200
            assert admin.get(path).status_code == 200
    failed = [job for job in jobs if job["state"] == "failed"]
    for job in failed:
        assert not re.search(r"'[^']*'", job["reason"]), job["reason"]  # no quoted engine values


# =====================================================================================================
# 2. Access control
# =====================================================================================================


def test_an_operator_cannot_reach_another_operators_job(target: Target) -> None:
    job = target.released_job
    with target.as_("bob") as bob:
        for method, path in [
            ("GET", f"/v1/jobs/{job}"),
            ("GET", f"/v1/jobs/{job}/result"),
            ("GET", f"/v1/jobs/{job}/receipt"),
            ("POST", f"/v1/jobs/{job}/cancel"),
        ]:
            answer = bob.request(method, path)
            body = _problem(answer, 404, 403)
            assert "diagnosis" not in json.dumps(body)
        listed = bob.get("/v1/jobs").json()["jobs"]
        assert job not in {j["job_id"] for j in listed}
        assert [s["name"] for s in bob.get("/v1/scopes").json()] == ["rt-bob-only"]
        _problem(bob.get(f"/v1/scopes/{SCOPE}"), 404, 403)
        _problem(bob.submit(demo.FLU_BY_DISTRICT), 403, 404)
        _problem(bob.post("/v1/jobs/check", json={"scope": SCOPE, "sql": demo.FLU_BY_DISTRICT}), 403, 404)


@pytest.mark.parametrize("label", ["pending", "expired", "future", "revoked", "rejected", "not-granted"])
def test_an_operator_cannot_use_a_scope_that_is_not_active_for_them(target: Target, label: str) -> None:
    name, _version = target.scopes[label]
    before = _state(target)
    with target.as_("alice") as alice:
        _problem(alice.post("/v1/jobs/check", json={"scope": name, "sql": demo.FLU_BY_DISTRICT}), 403, 404)
        _problem(alice.submit(demo.FLU_BY_DISTRICT, scope=name), 403, 404)
        assert name not in {s["name"] for s in alice.get("/v1/scopes").json()}
        _problem(alice.get(f"/v1/scopes/{name}"), 404, 403)
    assert _state(target) == before


def test_a_steward_cannot_touch_another_domains_data(target: Target) -> None:
    hb, visits = demo_data.HEALTH_BUREAU, demo_data.VISITS_DATASET
    with target.as_("hank") as hank:
        version = hank.get(f"/v1/datasets/{hb}/{visits}").json()["current_version"]
    before = _state(target)
    frame = target.visits.head(50)
    with target.as_("carol") as carol:
        attempts = [
            carol.post("/v1/datasets", json={"domain": hb, "name": "planted"}),
            carol.get(f"/v1/datasets/{hb}/{visits}"),
            carol.post(f"/v1/datasets/{hb}/{visits}/versions/{version}/retire"),
            carol.post(f"/v1/datasets/{hb}/{visits}/versions/{version}/shred"),
            carol.post(
                f"/v1/datasets/{hb}/{visits}/versions",
                data={"manifest": json.dumps(demo_data.visits_manifest())},
                files={
                    "visits": (
                        "visits.parquet",
                        parquet_bytes(pa.Table.from_pandas(frame, preserve_index=False)),
                        "application/vnd.apache.parquet",
                    )
                },
            ),
        ]
        for answer in attempts:
            _problem(answer, 403)
        assert {d["domain"] for d in carol.get("/v1/datasets").json()} == {demo_data.CIVIL_AFFAIRS}
    assert _state(target) == before


def test_officers_cannot_approve_their_own_scope_nor_one_that_grants_them(target: Target) -> None:
    pending_name, pending = target.scopes["pending"]
    peter_name, peters = target.scopes["grants-officer"]
    before = _state(target)
    with target.as_("olga") as olga, target.as_("peter") as peter:
        _problem(olga.post(f"/v1/scopes/{pending_name}/versions/{pending}/approve", json={}), 403)
        _problem(peter.post(f"/v1/scopes/{peter_name}/versions/{peters}/approve", json={}), 403)
        _problem(olga.post(f"/v1/scopes/{peter_name}/versions/{peters}/approve", json={}), 403)
    for who in ("alice", "audrey", "admin", "carol", "otto"):
        with target.as_(who) as other:
            _problem(other.post(f"/v1/scopes/{pending_name}/versions/{pending}/approve", json={}), 403)
    assert _state(target) == before


def test_a_revoked_scope_version_cannot_be_approved_back(target: Target) -> None:
    name, version = target.scopes["revoked"]
    with target.as_("peter") as peter:
        answer = peter.post(f"/v1/scopes/{name}/versions/{version}/approve", json={})
    assert 400 <= answer.status_code < 500
    _problem(answer, answer.status_code)
    with target.as_("olga") as olga:
        (scope,) = [s for s in olga.get("/v1/scopes").json() if s["name"] == name]
    assert scope["active_version"] is None


ESCALATIONS: list[tuple[str, str, str, Any]] = [
    ("alice", "POST", "/v1/principals", {"name": "mallory", "role": "admin"}),
    ("alice", "POST", "/v1/principals/alice/tokens", None),
    ("alice", "DELETE", "/v1/principals/bob/tokens", None),
    ("alice", "GET", "/v1/principals", None),
    ("alice", "POST", "/v1/domains", {"name": "shadow"}),
    ("alice", "POST", f"/v1/domains/{demo_data.HEALTH_BUREAU}/keys/rotate", None),
    ("alice", "POST", "/v1/keys/signing/rotate", None),
    ("alice", "GET", "/v1/audit/export", None),
    ("alice", "GET", "/v1/audit/events", None),
    ("alice", "GET", "/v1/reviews", None),
    ("alice", "POST", "/v1/datasets", {"domain": demo_data.CIVIL_AFFAIRS, "name": "mine"}),
    ("alice", "POST", "/v1/scopes", {"document": "scope: x", "format": "yaml"}),
    ("carol", "POST", "/v1/principals", {"name": "mallory", "role": "steward", "domain": "health-bureau"}),
    ("carol", "POST", "/v1/jobs", {"scope": SCOPE, "sql": demo.FLU_BY_DISTRICT}),
    ("carol", "GET", "/v1/scopes", None),
    ("olga", "POST", "/v1/domains", {"name": "shadow"}),
    ("olga", "POST", "/v1/jobs", {"scope": SCOPE, "sql": demo.FLU_BY_DISTRICT}),
    ("olga", "GET", "/v1/jobs", None),
    ("olga", "GET", "/v1/audit/export", None),
    ("audrey", "POST", "/v1/scopes", {"document": "scope: x", "format": "yaml"}),
    ("audrey", "POST", "/v1/jobs", {"scope": SCOPE, "sql": demo.FLU_BY_DISTRICT}),
    ("audrey", "POST", "/v1/principals", {"name": "mallory", "role": "admin"}),
    ("otto", "GET", "/v1/audit/events", None),
    ("otto", "GET", "/v1/jobs", None),
    ("otto", "POST", "/v1/jobs", {"scope": SCOPE, "sql": demo.FLU_BY_DISTRICT}),
    ("admin", "POST", "/v1/jobs", {"scope": SCOPE, "sql": demo.FLU_BY_DISTRICT}),
    ("admin", "POST", "/v1/jobs/check", {"scope": SCOPE, "sql": demo.FLU_BY_DISTRICT}),
    ("admin", "POST", "/v1/datasets", {"domain": demo_data.CIVIL_AFFAIRS, "name": "mine"}),
    ("admin", "POST", "/v1/scopes", {"document": "scope: x", "format": "yaml"}),
    ("admin", "GET", "/v1/audit/export", None),
]


@pytest.mark.parametrize(("who", "method", "path", "body"), ESCALATIONS)
def test_no_role_reaches_what_it_should_not(
    target: Target, who: str, method: str, path: str, body: Any
) -> None:
    before = _state(target)
    with target.as_(who) as caller:
        answer = caller.request(method, path, json=body) if body is not None else caller.request(method, path)
    _problem(answer, 403)
    assert _state(target) == before


def test_only_the_owner_reads_a_released_result(target: Target) -> None:
    job = target.released_job
    for who in ("admin", "audrey", "otto", "olga", "carol"):
        with target.as_(who) as other:
            _problem(other.get(f"/v1/jobs/{job}/result"), 403, 404)


def _tampered(token: str) -> list[str]:
    body = token[len("sbx_") :]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    import hashlib

    return [
        flipped,
        token[:-1],
        token + "x",
        token.upper(),
        "sbx_" + body[::-1],
        "xyz_" + body,
        body,
        hashlib.sha256(token.encode()).hexdigest(),
        token[:20] + " " + token[20:],
        "sbx_",
    ]


def test_tampered_tokens_are_refused(target: Target) -> None:
    for bad in _tampered(target.tokens["admin"]):
        with target.anonymous({"Authorization": f"Bearer {bad}"}) as caller:
            answer = caller.get("/v1/principals")
        problem = _problem(answer, 401)
        assert problem["code"] == "not-authenticated"
        assert answer.headers.get("www-authenticate", "").lower().startswith("bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": "Token sbx_abc"},
        {"Authorization": "Bearer Bearer sbx_abc"},
        {"Authorization": "Bearer " + "a" * 100_000},
        {"Authorization": "Bearer sbx_\u00e9\u00e8"},
        {"X-Api-Key": "sbx_abc"},
        {"Cookie": "token=sbx_abc"},
    ],
)
def test_missing_or_malformed_authorization_is_a_401(target: Target, headers: dict[str, str]) -> None:
    encoded = {k.encode("ascii"): v.encode("latin-1") for k, v in headers.items()}
    with httpx.Client(base_url=target.url, timeout=30) as http:
        answer = http.get("/v1/whoami", headers=encoded)
        _problem(answer, 401)
        query = http.get("/v1/whoami", params={"access_token": target.tokens["admin"]})
        _problem(query, 401)


def test_a_revoked_principals_old_token_is_refused(target: Target) -> None:
    with target.as_("admin") as admin:
        made = admin.post("/v1/principals", json={"name": "rt-temp", "role": "operator"})
        assert made.status_code == 201, made.text
        token = made.json()["token"]
        assert admin.request("DELETE", "/v1/principals/rt-temp/tokens").status_code == 200
    with target.anonymous({"Authorization": f"Bearer {token}"}) as caller:
        _problem(caller.get("/v1/whoami"), 401)


@pytest.mark.parametrize("size", [20_000, 70_000, 1_000_000])
def test_huge_headers_never_crash_the_gateway(target: Target, size: int) -> None:
    with httpx.Client(base_url=target.url, timeout=30) as http:
        try:
            answer = http.get("/v1/whoami", headers={"X-Junk": "a" * size, **_bearer(target.tokens["alice"])})
            assert answer.status_code < 500, answer.status_code
        except httpx.RemoteProtocolError:
            pass  # the server closed the connection on an oversized head: refused, not crashed
        assert http.get("/v1/health").status_code == 200


# =====================================================================================================
# 3. Bad input
# =====================================================================================================


@pytest.mark.parametrize(
    "sql",
    [
        "SELEC district FROM citizens",
        "SELECT",
        "SELECT district, COUNT(*) FROM citizens WHERE district = 'unterminated GROUP BY district",
        "",
        "   ",
        "-- just a comment",
        "/* unclosed comment SELECT 1",
        "SELECT \x00 FROM citizens",
        "SELECT district, COUNT(*) AS n FROM nowhere GROUP BY district",
        "SELECT district, COUNT(*) AS n FROM citizens GROUP BY district) (",
        "SELECT 1e999999 AS x",
        "SELECT '\ud7ff\ufffd' AS x",
    ],
)
def test_malformed_sql_is_a_clear_rejection(target: Target, sql: str) -> None:
    before = _state(target)
    with target.as_("alice") as alice:
        answer = alice.post("/v1/jobs/check", json={"scope": SCOPE, "sql": sql})
        if answer.status_code == 200:
            assert answer.json()["allowed"] is False
        else:
            _problem(answer, 422)
        _problem(alice.submit(sql), 422)
    assert _state(target) == before


NESTED: dict[str, Callable[[int], str]] = {
    "parentheses": lambda n: (
        "SELECT sex, COUNT(*) AS n FROM citizens WHERE " + "(" * n + "sex = 'F'" + ")" * n + " GROUP BY sex"
    ),
    "additions": lambda n: (
        "SELECT sex, COUNT(*) AS n FROM citizens WHERE 1" + " + 1" * n + " > 0 GROUP BY sex"
    ),
    "nots": lambda n: (
        "SELECT sex, COUNT(*) AS n FROM citizens WHERE " + "NOT " * n + "sex = 'F' GROUP BY sex"
    ),
    "ands": lambda n: (
        "SELECT sex, COUNT(*) AS n FROM citizens WHERE " + " AND ".join(["sex = 'F'"] * n) + " GROUP BY sex"
    ),
    "ors": lambda n: (
        "SELECT sex, COUNT(*) AS n FROM citizens WHERE " + " OR ".join(["sex = 'F'"] * n) + " GROUP BY sex"
    ),
    "cases": lambda n: (
        "SELECT sex, COUNT(*) AS n FROM citizens WHERE "
        + "CASE WHEN sex = 'F' THEN " * n
        + "1"
        + " END" * n
        + " = 1 GROUP BY sex"
    ),
    "functions": lambda n: "SELECT " + "abs(" * n + "1" + ")" * n + " AS x, COUNT(*) AS n FROM citizens",
    "subqueries": lambda n: (
        "SELECT sex, COUNT(*) AS n FROM " + "(SELECT * FROM " * n + "citizens" + ") t" * n + " GROUP BY sex"
    ),
    "ctes": lambda n: (
        "WITH "
        + ", ".join(f"c{i} AS (SELECT * FROM {'citizens' if i == 0 else f'c{i - 1}'})" for i in range(n))
        + f" SELECT sex, COUNT(*) AS n FROM c{n - 1} GROUP BY sex"
    ),
}


WIDE_CAP = {"ands": 1_000, "ors": 1_000, "subqueries": 1_500, "ctes": 1_000}


@pytest.mark.parametrize("depth", [700, 5_000])
@pytest.mark.parametrize("shape", sorted(NESTED))
def test_deeply_nested_sql_is_a_4xx_not_a_crash(target: Target, shape: str, depth: int) -> None:
    # Long flat AND/OR chains and deep subqueries cost the gateway seconds each (see the report): keep
    # them short enough for the suite's time budget; depth is what this test is about.
    sql = NESTED[shape](min(depth, WIDE_CAP.get(shape, depth)))
    with target.as_("alice") as alice:
        checked = alice.post("/v1/jobs/check", json={"scope": SCOPE, "sql": sql})
        assert checked.status_code < 500, (checked.status_code, checked.text[:200])
        if checked.status_code != 200:
            _problem(checked, checked.status_code)
        submitted = alice.submit(sql)
        assert submitted.status_code < 500, (submitted.status_code, submitted.text[:200])
        if submitted.status_code != 202:
            _problem(submitted, submitted.status_code)
        assert alice.get("/v1/health").status_code == 200


def test_a_10_mb_sql_string_is_refused_before_parsing(target: Target) -> None:
    before = _state(target)
    sql = "SELECT district, COUNT(*) AS n FROM citizens WHERE " + " OR ".join(["district = 'x'"] * 700_000)
    with target.as_("alice") as alice:
        assert len(sql) > 10_000_000
        _problem(alice.post("/v1/jobs", json={"scope": SCOPE, "sql": sql}), 413)
        _problem(alice.post("/v1/jobs/check", json={"scope": SCOPE, "sql": sql}), 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap must hold while streaming
            payload = json.dumps({"scope": SCOPE, "sql": sql}).encode()
            for start in range(0, len(payload), 1 << 16):
                yield payload[start : start + (1 << 16)]

        streamed = alice.post("/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
        _problem(streamed, 413)
        _problem(alice.submit("SELECT 1 AS x -- " + "x" * 100_001), 422)
    assert _state(target) == before


@pytest.mark.parametrize(
    "body",
    [
        b'{"scope": 123, "sql": "SELECT 1"}',
        b'{"scope": "flu-study-2026", "sql": ["SELECT 1"]}',
        b'{"scope": "flu-study-2026", "sql": {"$ne": null}}',
        b'{"scope": null, "sql": null}',
        b'{"scope": "flu-study-2026", "sql": "SELECT 1", "kind": "rust"}',
        b'{"scope": "flu-study-2026", "sql": "SELECT 1", "mode": "root"}',
        b'{"scope": "flu-study-2026", "sql": "SELECT 1", "code": "print(1)"}',
        b'{"scope": "flu-study-2026"}',
        b'{"scope": "flu-study-2026", "sql": NaN}',
        b'{"scope": "flu-study-2026", "sql": "SELECT 1", "sql": 2}',
        b'["flu-study-2026", "SELECT 1"]',
        b"null",
        b"12",
        b'"SELECT 1"',
        b"{",
        b"\xff\xfe{\x00",
        b"{" + b'"a":' * 20_000 + b"1" + b"}" * 20_000,
        b"[" * 50_000 + b"]" * 50_000,
        b'{"scope": "\\ud800", "sql": "SELECT 1"}',
    ],
)
def test_wrong_json_is_a_clear_4xx(target: Target, body: bytes) -> None:
    with target.as_("alice") as alice:
        for path in ("/v1/jobs", "/v1/jobs/check"):
            answer = alice.post(path, content=body, headers={"Content-Type": "application/json"})
            _problem(answer, 400, 403, 404, 422)


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/v1/jobs", "text/plain", b'{"scope": "flu-study-2026", "sql": "SELECT 1"}'),
        ("/v1/jobs", "application/x-www-form-urlencoded", b"scope=flu-study-2026&sql=SELECT+1"),
        (
            "/v1/jobs",
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="sql"\r\n\r\nSELECT 1\r\n--x--\r\n',
        ),
        ("/v1/jobs", "application/xml", b"<job/>"),
        ("/v1/jobs/check", "application/json-patch+json", b'{"scope": "flu-study-2026", "sql": "SELECT 1"}'),
        ("/v1/scopes", "application/yaml", b"scope: x"),
    ],
)
def test_wrong_content_types_are_a_415(target: Target, path: str, content_type: str, body: bytes) -> None:
    who = "olga" if path == "/v1/scopes" else "alice"
    with target.as_(who) as caller:
        _problem(caller.post(path, content=body, headers={"Content-Type": content_type}), 415)


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT "District" AS d, COUNT(*) AS n FROM citizens GROUP BY "District"',
        'SELECT "DISTRICT" AS d, COUNT(*) AS n FROM "CITIZENS" GROUP BY 1',
        'SELECT DiStRiCt AS "région", COUNT(*) AS "人数" FROM citizens GROUP BY DiStRiCt',
        'SELECT district AS "a""b", COUNT(*) AS "x\u202ey" FROM citizens GROUP BY district',
    ],
)
def test_quoted_and_unicode_identifiers_resolve_safely(target: Target, sql: str) -> None:
    """Identifiers spelled differently still name the same (group) column and still get the k rule."""
    with target.as_("alice") as alice:
        out = alice.outcome(sql)
    assert out.state in {"released", "http-422"}, out
    if out.state == "released":
        districts = {row[0] for row in out.rows}
        assert TINY not in districts
        assert "Military Zone" not in districts
        assert len(districts) >= 10


def _upload(steward: Attacker, dataset: str, files: Any, manifest: Any = None) -> httpx.Response:
    text = manifest if isinstance(manifest, str) else json.dumps(manifest or _SMALL_MANIFEST)
    return steward.post(
        f"/v1/datasets/{demo_data.CIVIL_AFFAIRS}/{dataset}/versions", data={"manifest": text}, files=files
    )


_SMALL_MANIFEST = {
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
_GOOD_CSV = b"person_id,district,income\nR1,North,10.5\nR2,South,20\n"


def _bad_uploads() -> dict[str, tuple[Any, Any]]:
    parquet = parquet_bytes(
        pa.table({"person_id": ["R1", "R2"], "district": ["N", "S"], "income": [1.0, 2.0]})
    )
    over = b"person_id,district,income\n" + b"R1,North,1\n" * ((UPLOAD_CAP_MB << 20) // 11 + 1000)
    return {
        "ragged-csv": (
            {"residents": ("r.csv", b"person_id,district,income\nR1,North\nR2,South,1,2\n", "text/csv")},
            None,
        ),
        "latin-1-csv": (
            {
                "residents": (
                    "r.csv",
                    "person_id,district,income\nR1,Jos\u00e9,1\n".encode("latin-1"),
                    "text/csv",
                )
            },
            None,
        ),
        "utf-16-csv": ({"residents": ("r.csv", _GOOD_CSV.decode().encode("utf-16"), "text/csv")}, None),
        "empty-file": ({"residents": ("r.csv", b"", "text/csv")}, None),
        "corrupt-parquet": (
            {
                "residents": (
                    "r.parquet",
                    parquet[:8] + bytes(b ^ 0x5A for b in parquet[8:-8]) + parquet[-8:],
                    "",
                )
            },
            None,
        ),
        "truncated-parquet": ({"residents": ("r.parquet", parquet[: len(parquet) // 2], "")}, None),
        "fake-parquet": ({"residents": ("r.parquet", b"PAR1" + b"\x00" * 64 + b"PAR1", "")}, None),
        "csv-named-parquet": ({"residents": ("r.parquet", _GOOD_CSV, "")}, None),
        "exe": ({"residents": ("r.exe", _GOOD_CSV, "application/octet-stream")}, None),
        "oversize": ({"residents": ("r.csv", over, "text/csv")}, None),
        "no-file": ({}, None),
        "table-not-in-manifest": ({"other": ("r.csv", _GOOD_CSV, "text/csv")}, None),
        "traversal-table-name": (
            {"../../escape": ("r.csv", _GOOD_CSV, "text/csv")},
            {"tables": [{**_SMALL_MANIFEST["tables"][0], "name": "../../escape"}]},
        ),
        "nul-table-name": (
            {"res\x00idents": ("r.csv", _GOOD_CSV, "text/csv")},
            {"tables": [{**_SMALL_MANIFEST["tables"][0], "name": "res\x00idents"}]},
        ),
        "long-column-name": (
            {"residents": ("r.csv", _GOOD_CSV.replace(b"income", b"i" * 10_000), "text/csv")},
            {
                "tables": [
                    {
                        **_SMALL_MANIFEST["tables"][0],
                        "columns": [
                            *_SMALL_MANIFEST["tables"][0]["columns"][:2],
                            {"name": "i" * 10_000, "type": "DOUBLE", "class": "sensitive"},
                        ],
                    }
                ]
            },
        ),
        "manifest-not-json": ({"residents": ("r.csv", _GOOD_CSV, "text/csv")}, "{tables: nope"),
        "manifest-deep-json": ({"residents": ("r.csv", _GOOD_CSV, "text/csv")}, "[" * 50_000 + "]" * 50_000),
        "unit-not-a-column": (
            {"residents": ("r.csv", _GOOD_CSV, "text/csv")},
            {"tables": [{**_SMALL_MANIFEST["tables"][0], "unit": "nobody"}]},
        ),
    }


def _upload_dataset(steward: Attacker, name: str) -> None:
    made = steward.post("/v1/datasets", json={"domain": demo_data.CIVIL_AFFAIRS, "name": name})
    assert made.status_code in {201, 409}, made.text


@pytest.mark.parametrize("case", sorted(_bad_uploads()))
def test_bad_uploads_are_refused_and_change_nothing(target: Target, case: str) -> None:
    files, manifest = _bad_uploads()[case]
    with target.as_("carol") as carol:
        _upload_dataset(carol, "rt-upload")
        before = _state(target)
        answer = _upload(carol, "rt-upload", files, manifest)
    problem = _problem(answer, 413, 415, 422)
    assert problem["code"] in {
        "invalid-upload",
        "payload-too-large",
        "unsupported-media-type",
        "request-invalid",
        "input-too-complex",
    }
    assert _state(target) == before


def test_an_oversize_upload_is_refused_while_streaming(target: Target) -> None:
    over = _bad_uploads()["oversize"][0]["residents"][1]
    request = httpx.Request(
        "POST",
        "/",
        data={"manifest": json.dumps(_SMALL_MANIFEST)},
        files={"residents": ("r.csv", over, "text/csv")},
    )
    body = request.read()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap must hold while the body streams in
        for start in range(0, len(body), 1 << 16):
            yield body[start : start + (1 << 16)]

    with target.as_("carol") as carol:
        _upload_dataset(carol, "rt-upload")
        before = _state(target)
        path = f"/v1/datasets/{demo_data.CIVIL_AFFAIRS}/rt-upload/versions"
        streamed = carol.post(
            path, content=chunks(), headers={"Content-Type": request.headers["Content-Type"]}
        )
        _problem(streamed, 413)
        _problem(carol.post(path, json={"manifest": _SMALL_MANIFEST}), 415)
    assert _state(target) == before


def test_an_upload_filename_cannot_escape_the_state_directory(target: Target) -> None:
    marker = f"rt-escape-{uuid.uuid4().hex[:8]}"
    outside = target.state_dir.parent
    with target.as_("carol") as carol:
        assert (
            carol.post(
                "/v1/datasets", json={"domain": demo_data.CIVIL_AFFAIRS, "name": "rt-names"}
            ).status_code
            == 201
        )
        for filename in (
            f"../../../{marker}.csv",
            f"{tempfile.gettempdir()}/{marker}.csv",
            f"..\\..\\{marker}.csv",
        ):
            answer = _upload(carol, "rt-names", {"residents": (filename, _GOOD_CSV, "text/csv")})
            assert answer.status_code in {200, 201, 415, 422}, (
                filename,
                answer.status_code,
                answer.text[:300],
            )
    assert not [p for p in outside.rglob(f"*{marker}*")]
    assert not list(Path(tempfile.gettempdir()).glob(f"*{marker}*"))


@pytest.mark.parametrize(
    ("who", "method", "path"),
    [
        ("alice", "GET", "/v1/jobs/..%2f..%2fetc%2fpasswd"),
        ("alice", "GET", "/v1/jobs/%2e%2e"),
        ("alice", "GET", "/v1/jobs/%2e%2e/result"),
        ("alice", "GET", "/v1/jobs/%00"),
        ("alice", "GET", "/v1/jobs/a%00b/result"),
        ("alice", "POST", "/v1/jobs/%2e%2e/cancel"),
        ("alice", "GET", "/v1/jobs/" + "x" * 10_000),
        ("alice", "GET", "/v1/jobs/%ff%fe"),
        ("alice", "GET", "/v1/jobs/1%20OR%201=1"),
        ("alice", "GET", "/v1/jobs/'%3B%20DROP%20TABLE%20jobs%3B--"),
        ("alice", "GET", "/v1/datasets/%2e%2e/%2e%2e"),
        ("alice", "GET", "/v1/datasets/civil-affairs/citizens%00"),
        ("alice", "GET", "/v1/scopes/%2e%2e"),
        ("alice", "GET", "/v1/scopes/" + "s" * 10_000),
        ("carol", "GET", "/v1/datasets/civil-affairs/..%2f..%2fhealth-bureau"),
        ("carol", "GET", "/v1/datasets/civil-affairs/%2e%2e"),
        ("carol", "POST", "/v1/datasets/civil-affairs/citizens/versions/..%2f..%2fkeyring.json/retire"),
        ("carol", "POST", "/v1/datasets/civil-affairs/citizens/versions/%2e%2e/shred"),
        ("carol", "POST", "/v1/datasets/civil-affairs/%2e%2e/versions/%2e%2e/retire"),
        ("olga", "POST", "/v1/scopes/%2e%2e/versions/%2e%2e/revoke"),
        ("olga", "POST", "/v1/scopes/flu-study-2026/versions/%00/approve"),
        ("admin", "POST", "/v1/principals/..%2fadmin/tokens"),
        ("admin", "DELETE", "/v1/principals/%2e%2e/tokens"),
        ("admin", "POST", "/v1/domains/..%2f..%2f/keys/rotate"),
        ("admin", "POST", "/v1/domains/%00/keys/rotate"),
        ("audrey", "POST", "/v1/jobs/%2e%2e/replay"),
        ("audrey", "GET", "/v1/jobs/%2e%2e/receipt"),
    ],
)
def test_path_traversal_in_ids_is_a_clear_4xx(target: Target, who: str, method: str, path: str) -> None:
    before = _state(target)
    with target.as_(who) as caller:
        body: dict[str, Any] | None = (
            {} if method == "POST" and ("/scopes/" in path or "/versions/" in path) else None
        )
        answer = caller.request(method, path, json=body) if body is not None else caller.request(method, path)
    _problem(answer, 400, 403, 404, 405, 409, 422)
    assert _state(target) == before


BAD_NAMES = [
    "../x",
    "x/../../y",
    "..",
    ".",
    "a\x00b",
    "A" * 10_000,
    "x" * 64,
    "CON",
    "rt\u202eevil",
    " ",
    "",
    "a/b",
    "%2e%2e",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_everywhere_and_change_nothing(target: Target, name: str) -> None:
    before = _state(target)
    doc = _scope_doc("placeholder", valid_from=date(2020, 1, 1), valid_until=date(2099, 1, 1))
    attempts = [
        ("carol", "/v1/datasets", {"domain": demo_data.CIVIL_AFFAIRS, "name": name}),
        ("admin", "/v1/domains", {"name": name}),
        ("admin", "/v1/principals", {"name": name, "role": "operator"}),
        ("admin", "/v1/principals", {"name": "rt-ok", "role": "operator", "groups": [name]}),
        ("admin", "/v1/principals", {"name": "rt-ok2", "role": "steward", "domain": name}),
    ]
    if name not in {"x" * 64, "CON", "%2e%2e"}:  # harmless as a scope name; the others cannot be addressed
        scope_doc = doc.replace("scope: placeholder", f"scope: {json.dumps(name)}")
        attempts.append(("olga", "/v1/scopes", {"document": scope_doc, "format": "yaml"}))
    for who, path, body in attempts:
        with target.as_(who) as caller:
            answer = caller.post(path, json=body)
        _problem(answer, 400, 404, 409, 413, 422)
    assert _state(target) == before


# =====================================================================================================
# 4. Audit: refusals are recorded, and the chain still verifies after everything above
# =====================================================================================================


def _events(target: Target, event: str) -> list[dict[str, Any]]:
    with target.as_("audrey") as auditor:
        page = auditor.get("/v1/audit/events", params={"event": event, "limit": 1000})
        assert page.status_code == 200
        events: list[dict[str, Any]] = page.json()["events"]
        while page.json()["next_since_seq"] is not None:
            page = auditor.get(
                "/v1/audit/events",
                params={"event": event, "limit": 1000, "since_seq": page.json()["next_since_seq"]},
            )
            events += page.json()["events"]
    return events


def test_security_relevant_refusals_are_audited(target: Target) -> None:
    marker = uuid.uuid4().hex
    with target.anonymous({"Authorization": "Bearer sbx_forged"}) as forger:
        _problem(forger.get(f"/v1/jobs/{marker}"), 401)
    with target.as_("alice") as alice:
        _problem(alice.get(f"/v1/principals?m={marker}"), 403)
        rejected = _problem(
            alice.submit(f"SELECT name, COUNT(*) AS n FROM citizens GROUP BY name -- {marker}"), 422
        )
        _problem(alice.submit(demo.FLU_BY_DISTRICT, scope=target.scopes["revoked"][0]), 403, 404)
        _problem(alice.submit(demo.FLU_BY_DISTRICT, scope=target.scopes["not-granted"][0]), 403, 404)
    with target.as_("carol") as carol:
        _problem(carol.get(f"/v1/datasets/{demo_data.HEALTH_BUREAU}/{demo_data.VISITS_DATASET}"), 403)
    name, version = target.scopes["pending"]
    with target.as_("olga") as olga:
        _problem(olga.post(f"/v1/scopes/{name}/versions/{version}/approve", json={}), 403)

    failed = _events(target, "auth.failed")
    assert any(marker in json.dumps(e["details"]) for e in failed)
    denied = _events(target, "request.denied")
    assert any(e["actor"] == "alice" and "/v1/principals" in json.dumps(e["details"]) for e in denied)
    assert any(e["actor"] == "carol" and demo_data.HEALTH_BUREAU in json.dumps(e["details"]) for e in denied)
    assert any(e["actor"] == "olga" and name in json.dumps(e["details"]) for e in denied)
    for scope in (target.scopes["revoked"][0], target.scopes["not-granted"][0]):
        assert any(e["actor"] == "alice" and scope in json.dumps(e["details"]) for e in denied), scope
    rejections = _events(target, "job.rejected")
    assert any(
        e["details"].get("job") == rejected["job_id"] or rejected["job_id"] in json.dumps(e)
        for e in rejections
    )


def test_the_audit_chain_verifies_after_the_attacks(target: Target) -> None:
    with target.anonymous({"Authorization": "Bearer sbx_forged"}) as forger:
        _problem(forger.get("/v1/whoami"), 401)
    with target.as_("alice") as alice:
        _problem(alice.get("/v1/principals"), 403)
        _problem(alice.submit("SELECT name, COUNT(*) AS n FROM citizens GROUP BY name"), 422)
    with target.as_("audrey") as auditor:
        head = auditor.get("/v1/audit/head").json()
        export = auditor.get("/v1/audit/export")
    assert export.status_code == 200
    entries = [AuditEntry.from_json(line) for line in export.text.splitlines() if line.strip()]
    report = verify_chain(entries, expected_head=head["hash"])
    assert report.count == len(entries) >= head["count"]
    assert [e.seq for e in entries] == list(range(len(entries)))
    names = {e.event for e in entries}
    assert {"auth.failed", "request.denied", "job.rejected", "job.released", "scope.approved"} <= names
