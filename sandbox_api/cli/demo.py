"""The demo: seed a deployment through the public API, then narrate what each role does and why.

Everything here goes through ``SandboxClient``, exactly as a real steward, officer, operator or auditor
would: the demo is also a smoke test of the product's public surface.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Final

import pandas as pd
from tqdm import tqdm

from crypto.audit import AuditEntry, verify_chain
from crypto.errors import IntegrityError
from sandbox_api.cli import demo_data
from sandbox_api.cli.dp_summary import preview_lines, report_lines
from sandbox_api.client.api_client import ClientError, SandboxClient
from sandbox_api.schemas import DatasetOut, ReleaseReportOut

Say = Callable[[str], None]


@dataclass(frozen=True)
class Member:
    """One principal of the demo cast."""

    name: str
    role: str
    domain: str | None = None
    groups: tuple[str, ...] = ()
    why: str = ""


CAST: Final[tuple[Member, ...]] = (
    Member("carol", "steward", demo_data.CIVIL_AFFAIRS, why="registers the citizen register"),
    Member("hank", "steward", demo_data.HEALTH_BUREAU, why="registers the visit log"),
    # The catalog's four eyes: a version goes live only when a second steward of its domain publishes it.
    Member("cindy", "steward", demo_data.CIVIL_AFFAIRS, why="reviews and publishes carol's uploads"),
    Member("hugo", "steward", demo_data.HEALTH_BUREAU, why="reviews and publishes hank's uploads"),
    Member("olga", "policy_officer", why="writes the scope"),
    Member("peter", "policy_officer", why="approves it: four eyes"),
    Member("alice", "operator", groups=("cdc-analysts",), why="analyses, never sees a row"),
    Member("otto", "output_checker", why="reviews results automated checks cannot clear"),
    Member("audrey", "auditor", why="verifies the audit chain offline"),
)

FLU_BY_DISTRICT: Final = """\
SELECT c.district,
       COUNT(DISTINCT v.person_id) AS patients,
       COUNT(*)                    AS visits,
       AVG(v.cost)                 AS avg_cost
FROM visits v JOIN citizens c ON v.person_id = c.person_id
WHERE v.diagnosis = 'J11 Influenza'
GROUP BY c.district
ORDER BY patients DESC"""

RARE_DIAGNOSES: Final = """\
SELECT diagnosis, COUNT(DISTINCT person_id) AS patients, SUM(cost) AS total_cost
FROM visits
GROUP BY diagnosis"""

# One domain's data: a question joining both domains runs as a cross-domain job, and those do not take
# differential privacy yet (docs/cross-domain.md), so the DP step asks civil-affairs alone.
DP_INCOME_BY_DISTRICT: Final = """\
SELECT district,
       COUNT(*)    AS citizens,
       AVG(income) AS avg_income
FROM citizens
GROUP BY district"""

SINGLE_OUT: Final = """\
SELECT name, national_id, phone, income
FROM citizens
WHERE district = 'Lighthouse Island'"""


@dataclass(frozen=True)
class DemoCast:
    """The tokens of the demo's principals, by name (admin included)."""

    base_url: str
    tokens: Mapping[str, str]

    def client(self, name: str, *, timeout: float = 120.0) -> SandboxClient:
        return SandboxClient(self.base_url, self.tokens[name], timeout=timeout)

    def to_json(self) -> str:
        return json.dumps({"tokens": dict(self.tokens)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, base_url: str) -> DemoCast:
        body = json.loads(text)
        return cls(base_url=base_url, tokens={str(k): str(v) for k, v in body["tokens"].items()})


@dataclass(frozen=True)
class WalkthroughOutcome:
    """What the walkthrough saw, for callers (and tests) that want more than the narration."""

    released: pd.DataFrame
    report: ReleaseReportOut
    rejection: ClientError
    audit_events: int
    audit_head: str
    #: The differentially private release (``None`` when the demo's DP budget was already spent).
    dp_released: pd.DataFrame | None = None


# ---------------------------------------------------------------------------------------------------
# Narration helpers
# ---------------------------------------------------------------------------------------------------


def _heading(say: Say, text: str) -> None:
    say("")
    say(f"== {text} " + "=" * max(0, 96 - len(text)))


def _role(say: Say, who: str, text: str) -> None:
    say(textwrap.fill(text, width=100, initial_indent=f"[{who}] ", subsequent_indent=" " * (len(who) + 3)))


def _indent(text: str) -> str:
    return textwrap.indent(text, "    ")


def _table(frame: pd.DataFrame) -> str:
    with pd.option_context("display.max_rows", 30, "display.width", 120, "display.max_columns", 12):
        return _indent(frame.to_string(index=False))


@contextmanager
def _step(description: str, *, progress: bool) -> Iterator[None]:
    with tqdm(total=1, desc=description, disable=not progress, leave=False) as bar:
        yield
        bar.update(1)


# ---------------------------------------------------------------------------------------------------
# Provisioning
# ---------------------------------------------------------------------------------------------------


def provision(
    admin: SandboxClient,
    *,
    admin_token: str,
    citizens_n: int = 200_000,
    visits_n: int = 1_000_000,
    seed: int = demo_data.DEFAULT_SEED,
    today: date,
    say: Say = print,
    progress: bool = True,
) -> DemoCast:
    """Domains, one principal per role, both datasets and an approved scope, all through the API."""
    base_url = admin.base_url
    _heading(say, "Setting up: admin")
    for domain, description in (
        (demo_data.CIVIL_AFFAIRS, "Civil affairs bureau: the citizen register"),
        (demo_data.HEALTH_BUREAU, "Health bureau: clinic and hospital visits"),
    ):
        admin.create_domain(domain, description=description)
        _role(say, "admin", f"created domain {domain!r} with its own key-encryption key.")
    tokens = {"admin": admin_token}
    for member in CAST:
        created = admin.create_principal(member.name, member.role, domain=member.domain, groups=member.groups)
        tokens[member.name] = created.token
    _role(say, "admin", f"created {len(CAST)} principals, one per role and a second steward per domain.")
    cast = DemoCast(base_url=base_url, tokens=tokens)

    _heading(say, "Setting up: data stewards")
    with _step("generating demo data", progress=progress):
        citizens, visits = demo_data.demo_datasets(citizens_n=citizens_n, visits_n=visits_n, seed=seed)
    stewards = {demo_data.CIVIL_AFFAIRS: "carol", demo_data.HEALTH_BUREAU: "hank"}
    reviewers = {demo_data.CIVIL_AFFAIRS: "cindy", demo_data.HEALTH_BUREAU: "hugo"}
    for dataset in (citizens, visits):
        uploading = _step(f"uploading {dataset.domain}/{dataset.name}", progress=progress)
        with cast.client(stewards[dataset.domain], timeout=600.0) as steward, uploading:
            steward.create_dataset(dataset.domain, dataset.name, description=dataset.description)
            version = steward.upload_version(
                dataset.domain, dataset.name, manifest=dataset.manifest, tables={dataset.table: dataset.frame}
            )
        _role(
            say,
            stewards[dataset.domain],
            f"uploaded {dataset.domain}/{dataset.name}: {len(dataset.frame):,} rows, encrypted at rest "
            f"under a fresh data key; version {version.version.version_id[:16]}… (SHA-256 of the content), "
            "stored as a draft with its validation report.",
        )
        if version.version.state == "draft":
            with cast.client(reviewers[dataset.domain]) as reviewer:
                reviewer.publish_version(
                    dataset.domain,
                    dataset.name,
                    version.version.version_id,
                    reason="validation report checked: every declared category, range and unit holds",
                )
            _role(
                say,
                reviewers[dataset.domain],
                f"reviewed the draft of {dataset.domain}/{dataset.name} and published it (four eyes): "
                "jobs read it from now on.",
            )

    _heading(say, "Setting up: policy officers")
    document = demo_data.demo_scope_yaml(
        valid_from=date(today.year, 1, 1), valid_until=date(today.year + 1, 12, 31)
    )
    with cast.client("olga") as olga, cast.client("peter") as peter:
        version_id = olga.create_scope(document).version.version_id
        _role(
            say,
            "olga",
            f"wrote scope {demo_data.DEMO_SCOPE_NAME!r} for operator alice: names and national IDs denied, "
            "person_id usable only as a join key, birth dates generalised to decades, the Military Zone "
            "filtered out, every released row backed by at least 10 people.",
        )
        try:
            olga.approve_scope(demo_data.DEMO_SCOPE_NAME, version_id, reason="looks right to me")
        except ClientError as refused:
            _role(
                say,
                "olga",
                f"tried to approve her own scope and was refused ({refused.code}): {refused.detail}",
            )
        peter.approve_scope(
            demo_data.DEMO_SCOPE_NAME, version_id, reason="reviewed against the study protocol"
        )
        _role(say, "peter", f"approved version {version_id[:16]}…: the scope is now active.")
        dp_document = demo_data.dp_scope_yaml(
            valid_from=date(today.year, 1, 1), valid_until=date(today.year + 1, 12, 31)
        )
        dp_version = olga.create_scope(dp_document).version.version_id
        _role(
            say,
            "olga",
            f"wrote scope {demo_data.DP_SCOPE_NAME!r}: the same study with differential privacy. Every "
            "released number carries OpenDP noise; each job spends epsilon 1 of a budget of 5 per analyst "
            "that no new version can reset; a person counts with at most 4 visits; costs are clamped to "
            "[0, 2000]; every district is released, empty ones too (docs/dp.md).",
        )
        peter.approve_scope(demo_data.DP_SCOPE_NAME, dp_version, reason="epsilon and bounds as agreed")
        _role(say, "peter", f"approved version {dp_version[:16]}…: the DP scope is active too.")
    return cast


def print_tokens(cast: DemoCast, *, say: Say = print) -> None:
    _heading(say, "Principals and their bearer tokens (keep them secret)")
    roles = {member.name: member for member in CAST}
    for name, token in cast.tokens.items():
        member = roles.get(name)
        label = "admin" if member is None else member.role + (f" ({member.domain})" if member.domain else "")
        purpose = "creates domains, principals and tokens" if member is None else member.why
        say(f"  {name:<7} {label:<30} {token}")
        say(f"  {'':<7} {purpose}")
    say(f"  Web console: {console_url(cast.base_url)} (sign in as any of them by pasting their token)")


def console_url(base_url: str) -> str:
    """Where the gateway serves its web console.

    >>> console_url("http://127.0.0.1:8000/")
    'http://127.0.0.1:8000/console'
    """
    return base_url.rstrip("/") + "/console"


# ---------------------------------------------------------------------------------------------------
# The walkthrough
# ---------------------------------------------------------------------------------------------------


def walkthrough(
    *,
    steward: SandboxClient,
    operator: SandboxClient,
    auditor: SandboxClient,
    say: Say = print,
    progress: bool = True,
) -> WalkthroughOutcome:
    """What each role does, and why the operator can use data they never see."""
    _heading(say, "1. The steward sees schemas, classes and row counts, never rows")
    for dataset in steward.list_datasets():
        say(_summary(dataset))

    _heading(say, "2. The operator finds their scope and reads a schema")
    scopes = operator.list_scopes()
    _role(say, "alice", f"scopes granted to me: {[scope.name for scope in scopes]}")
    say(_summary(operator.get_dataset(demo_data.HEALTH_BUREAU, demo_data.VISITS_DATASET)))

    _heading(say, "3. An allowed aggregate across two domains: influenza patients by district")
    say(_indent(FLU_BY_DISTRICT))
    say(
        "    Visits belong to health-bureau, districts to civil-affairs: submitted as a cross-domain job, "
        "each domain decrypts and computes only its own rows in its own sandboxes; between them cross "
        "only blinded tokens, secret shares and the released cells."
    )
    dry_run = operator.check_job(demo_data.DEMO_SCOPE_NAME, FLU_BY_DISTRICT, cross_domain=True)
    _role(
        say,
        "alice",
        "dry run first (nothing executes): "
        + ("allowed." if dry_run.allowed else f"refused: {[f.message for f in dry_run.findings]}"),
    )
    if dry_run.rewritten_sql:
        say("    The policy engine rewrites it (masks, row filter, hidden unit counts), then splits it")
        say("    into each domain's own part:")
        say(_indent(_indent(dry_run.rewritten_sql)))
    job = operator.submit_job(demo_data.DEMO_SCOPE_NAME, FLU_BY_DISTRICT, cross_domain=True)
    finished = operator.wait_for_job(job.job_id, timeout=600.0, progress=progress)
    if finished.state != "released":
        raise ClientError(0, "demo-failed", f"job {job.job_id} ended {finished.state}: {finished.reason}")
    result = operator.get_result(job.job_id)
    _role(say, "alice", f"job {job.job_id} released {len(result.table)} rows:")
    say(_table(result.table))
    suppression = result.report
    _role(
        say,
        "gateway",
        f"suppression report: {suppression.rows_released} rows released, "
        f"{suppression.cells_rounded} cells rounded, {suppression.rows_capped} rows capped "
        f"(min_units={suppression.min_units}).",
    )
    for reason in suppression.reasons:
        say(textwrap.fill(str(reason), width=100, initial_indent="    - ", subsequent_indent="      "))
    say(
        "    Districts with fewer than 10 influenza patients would be dropped, and the Military Zone never "
        "entered the computation at all (the scope's row filter)."
    )
    if result.receipt:
        _role(say, "gateway", "signed receipt: " + json.dumps(dict(result.receipt), ensure_ascii=False)[:300])

    dp_released = _differential_privacy(operator, say=say, progress=progress)

    _heading(say, "5. A query that would single people out is rejected, with reasons")
    say(_indent(SINGLE_OUT))
    try:
        operator.submit_job(demo_data.DEMO_SCOPE_NAME, SINGLE_OUT)
    except ClientError as refused:
        rejection = refused
    else:
        raise ClientError(0, "demo-failed", "the gateway accepted a query that lists names")
    _role(say, "gateway", f"{rejection.status} {rejection.code}:")
    say(_indent(rejection.describe()))

    _heading(say, "6. The auditor verifies the whole audit chain offline")
    export = auditor.audit_export()
    entries = [AuditEntry.from_json(line) for line in export.splitlines() if line.strip()]
    try:
        report = verify_chain(entries)
    except IntegrityError as broken:
        raise ClientError(0, "demo-failed", f"the audit chain does not verify: {broken.detail}") from broken
    _role(
        say,
        "audrey",
        f"exported {report.count} events; every hash links to the one before; head {report.head_hash[:16]}…",
    )
    for entry in entries[-4:]:
        say(f"    #{entry.seq:<5} {entry.event:<22} by {entry.actor}")
    say("    Verify it yourself: sandbox audit verify <export.jsonl>")
    return WalkthroughOutcome(
        released=result.table,
        report=result.report,
        rejection=rejection,
        audit_events=report.count,
        audit_head=report.head_hash,
        dp_released=dp_released,
    )


def _differential_privacy(operator: SandboxClient, *, say: Say, progress: bool) -> pd.DataFrame | None:
    """Step 4: the cost shown before a DP job runs, the noisy release, and the budget left after it.
    ``None`` when the budget is already spent (a demo state reused five times): that refusal is shown."""
    _heading(say, "4. Differential privacy: the cost before running, a noisy release, the budget left")
    say(_indent(DP_INCOME_BY_DISTRICT))
    preview = operator.check_job(demo_data.DP_SCOPE_NAME, DP_INCOME_BY_DISTRICT)
    if not preview.allowed or preview.dp is None:
        raise ClientError(
            0, "demo-failed", f"the DP dry run refused: {[f.message for f in preview.findings]}"
        )
    _role(say, "alice", "dry run under the DP scope (nothing runs, no data is read, nothing is spent):")
    for line in preview_lines(preview.dp, preview.budget_left):
        say("    " + line)
    try:
        job = operator.submit_job(demo_data.DP_SCOPE_NAME, DP_INCOME_BY_DISTRICT)
    except ClientError as refused:
        if refused.code != "dp-budget-exhausted":
            raise
        _role(say, "gateway", f"{refused.status} {refused.code}: {refused.detail}")
        say("    The budget of this scope is spent for alice, for good: that is what bounds what all of her")
        say("    jobs together can reveal about anyone. (sandbox demo --fresh starts a new deployment.)")
        return None
    finished = operator.wait_for_job(job.job_id, timeout=600.0, progress=progress)
    if finished.state != "released":
        raise ClientError(0, "demo-failed", f"job {job.job_id} ended {finished.state}: {finished.reason}")
    result = operator.get_result(job.job_id)
    _role(say, "alice", f"job {job.job_id} released {len(result.table)} rows, each number with noise:")
    say(_table(result.table))
    spent = result.report.model_dump().get("differential_privacy")
    if spent is not None:
        for line in report_lines(spent):
            _role(say, "gateway", line)
    for reason in result.report.reasons:
        say(textwrap.fill(str(reason), width=100, initial_indent="    - ", subsequent_indent="      "))
    # The job itself says what it spent and what is left after it (no second dry run needed).
    budget = finished.dp_budget
    if budget is None:
        raise ClientError(0, "demo-failed", f"job {job.job_id} under a DP scope shows no budget spent")
    left, limit = budget.left, budget.limit.get("epsilon", 0.0)
    _role(
        say,
        "alice",
        f"budget left in {demo_data.DP_SCOPE_NAME}: epsilon {left.get('epsilon', 0.0):g} of {limit:g} "
        "(a failed or cancelled job is refunded; mock jobs spend nothing; nothing ever resets it). "
        "Lighthouse Island is listed like every district although only a few people live there: "
        "its numbers are mostly noise, and that is the protection.",
    )
    return result.table


def run_walkthrough(cast: DemoCast, *, say: Say = print, progress: bool = True) -> WalkthroughOutcome:
    """The walkthrough with the demo cast's own clients."""
    with ExitStack() as stack:
        steward = stack.enter_context(cast.client("hank"))
        operator = stack.enter_context(cast.client("alice", timeout=600.0))
        auditor = stack.enter_context(cast.client("audrey"))
        return walkthrough(steward=steward, operator=operator, auditor=auditor, say=say, progress=progress)


def _summary(dataset: DatasetOut) -> str:
    """A dataset as a steward or operator sees it: schema, classes, versions, row counts; no rows."""
    lines = [
        f"    {dataset.domain}/{dataset.name}: {len(dataset.versions)} version(s), current "
        f"{(dataset.current_version or '-')[:16]}…"
    ]
    current = next((v for v in dataset.versions if v.version_id == dataset.current_version), None)
    for table in current.tables if current is not None else ():
        columns = ", ".join(f"{c.name} {c.type} ({c.cls})" for c in table.columns)
        rows = "" if table.row_count is None else f" {table.row_count:,} rows,"
        lines.append(f"      table {table.name}:{rows} unit {table.unit}")
        lines.append(
            textwrap.fill(columns, width=100, initial_indent="        ", subsequent_indent="        ")
        )
    return "\n".join(lines)
