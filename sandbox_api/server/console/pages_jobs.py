"""The operator's desk: the SQL editor with its inline dry run, submit, live job state, the result as a
table and a chart, its suppression report and receipt, CSV download. Admins and auditors read jobs too,
as on the API (never results: those are the owner's)."""

from __future__ import annotations

import csv
import io
import re
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Form
from starlette.responses import Response

from crypto.errors import CryptoError
from crypto.hashing import sha256_hex
from sandbox_api.errors import JobRejected
from sandbox_api.job_types import Kind, Mode
from sandbox_api.receipt_check import verify_receipt
from sandbox_api.roles import Role
from sandbox_api.server.access_trace import TRACE_DETAILS
from sandbox_api.server.console.rendering import SECURITY_HEADERS
from sandbox_api.server.console.web import PREFIX, JobReaderV, OperatorV, Visitor
from sandbox_api.server.services.job_kinds import finding_dicts
from sandbox_api.server.services.job_states import JobState
from sandbox_api.server.services.jobs import ResultView

router = APIRouter(prefix=PREFIX + "/jobs", include_in_schema=False)

# Settled for the page: nothing more will change without a person acting.
SETTLED = frozenset(
    {
        JobState.RELEASED.value,
        JobState.REJECTED.value,
        JobState.FAILED.value,
        JobState.CANCELLED.value,
        JobState.EXPIRED.value,
        JobState.DENIED.value,
        JobState.WITHHELD.value,
    }
)
MAX_SQL = 20_000

SqlField = Annotated[str, Form(max_length=MAX_SQL)]
ScopeField = Annotated[str, Form(max_length=200)]
ModeField = Annotated[Mode, Form()]
KindField = Annotated[Kind, Form()]


def _text(kind: Kind, text: str) -> dict[str, str | None]:
    """The editor has one text box: SQL for an SQL job, code for a Python job."""
    return {"sql": text, "code": None} if kind is Kind.SQL else {"sql": None, "code": text}


@router.get("")
def jobs_page(who: JobReaderV) -> Response:
    principal = who.who
    jobs = who.services.jobs.list_jobs(principal, state=None, limit=50, offset=0)
    scopes = (
        sorted({v.name for v in who.services.scopes.granted_to(principal)})
        if principal.role is Role.OPERATOR
        else []
    )
    return who.page("jobs.html", jobs=jobs, scopes=scopes)


@router.post("/check")
def check_job(
    who: OperatorV,
    scope: ScopeField,
    sql: SqlField,
    mode: ModeField = Mode.REAL,
    kind: KindField = Kind.SQL,
) -> Response:
    """The dry run, as an htmx fragment under the editor: every finding on its fragment, what to write
    instead, the rewritten SQL and the privacy-budget preview where the scope has one."""
    # The access trace's `read.jobs.check` names what was tried, as on the API: a hash, never the text.
    traced: dict[str, object] = {
        "scope": scope,
        "kind": kind.value,
        "mode": mode.value,
        ("sql_sha256" if kind is Kind.SQL else "code_sha256"): sha256_hex(sql.encode("utf-8")),
    }
    setattr(who.request.state, TRACE_DETAILS, traced)
    report = who.services.jobs.dry_run(who.who, scope=scope, kind=kind, mode=mode, **_text(kind, sql))
    traced["allowed"] = report.allowed
    traced["rules"] = sorted({finding.rule for finding in report.findings})
    return who.page(
        "fragments/dry_run.html",
        report=report,
        findings=finding_dicts(report.findings),
        marked=mark_fragments(sql, finding_dicts(report.findings)),
    )


@router.post("")
def submit_job(
    who: OperatorV,
    scope: ScopeField,
    sql: SqlField,
    mode: ModeField = Mode.REAL,
    kind: KindField = Kind.SQL,
) -> Response:
    try:
        view = who.services.jobs.submit(who.who, scope=scope, kind=kind, mode=mode, **_text(kind, sql))
    except JobRejected as exc:
        # Rejected jobs are stored with every finding: show them on the job's own page.
        job_id = exc.extra.get("job_id")
        if not isinstance(job_id, str):
            raise
        return who.redirect(f"{PREFIX}/jobs/{job_id}")
    return who.redirect(f"{PREFIX}/jobs/{view.job_id}")


@router.get("/{job_id}")
def job_page(job_id: str, who: JobReaderV) -> Response:
    principal = who.who
    job = who.services.jobs.get(principal, job_id)
    result = receipt = None
    if job.state == JobState.RELEASED.value:
        if principal.role is Role.OPERATOR:
            result = who.services.jobs.result(principal, job_id)
            receipt = result.receipt
        else:  # auditors and admins read receipts (audited), never results: as on the API
            receipt = who.services.receipts.read(principal, job_id)
    return who.page(
        "job.html",
        job=job,
        settled=job.state in SETTLED,
        result=result,
        receipt=receipt,
        verified=receipt_status(who, receipt, result),
        marked=mark_fragments(job.sql, job.findings),
    )


def receipt_status(who: Visitor, receipt: dict[str, Any] | None, result: ResultView | None) -> dict[str, Any]:
    """The receipt checked as an offline verifier would: signature, key validity and (for the owner,
    who holds the result) that the released table is the one it signed."""
    if receipt is None:
        return {}
    keys = {record.kid: record for record in who.services.keys.signing_keys()}
    table = None if result is None else {"columns": result.columns, "rows": result.rows}
    try:
        report = verify_receipt(receipt, keys, result=table)
    except CryptoError as exc:
        return {"ok": False, "problem": str(exc)}
    return {"ok": True, "kid": report.kid, "result_checked": report.result_checked}


@router.get("/{job_id}/result.csv")
def result_csv(job_id: str, who: OperatorV) -> Response:
    result = who.services.jobs.result(who.who, job_id)
    sink = io.StringIO()
    writer = csv.writer(sink)
    writer.writerow(result.columns)
    writer.writerows(result.rows)
    headers = {
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="result-{result.job_id}.csv"',
    }
    return who.finish(Response(sink.getvalue(), media_type="text/csv; charset=utf-8", headers=headers))


@router.get("/{job_id}/result.parquet")
def result_parquet(job_id: str, who: OperatorV) -> Response:
    result = who.services.jobs.result(who.who, job_id)
    columns = {name: [row[i] for row in result.rows] for i, name in enumerate(result.columns)}
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    headers = {
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="result-{result.job_id}.parquet"',
    }
    return who.finish(Response(sink.getvalue(), media_type="application/vnd.apache.parquet", headers=headers))


def mark_fragments(sql: str, findings: list[dict[str, Any]]) -> list[tuple[str, int | None]]:
    """``sql`` cut into pieces, each with the number of the finding whose fragment it is (or None), so
    the page highlights every finding where it occurs.

    >>> mark_fragments("SELECT name FROM t", [{"fragment": "name"}])
    [('SELECT ', None), ('name', 1), (' FROM t', None)]
    """
    spans: list[tuple[int, int, int]] = []
    for number, finding in enumerate(findings, start=1):
        found = _locate(sql, str(finding.get("fragment") or ""))
        if found is not None and not any(s < found[1] and found[0] < e for s, e, _ in spans):
            spans.append((*found, number))
    pieces: list[tuple[str, int | None]] = []
    cursor = 0
    for start, end, number in sorted(spans):
        if start > cursor:
            pieces.append((sql[cursor:start], None))
        pieces.append((sql[start:end], number))
        cursor = end
    if cursor < len(sql):
        pieces.append((sql[cursor:], None))
    return pieces


def _locate(sql: str, fragment: str) -> tuple[int, int] | None:
    """Where ``fragment`` occurs in ``sql``: as written, else unquoted (the engine reports qualified,
    quoted names such as ``"citizens"."name"``), else its last name as a whole word.

    >>> _locate('SELECT name FROM t', '"t"."name"')
    (7, 11)
    """
    candidates = [fragment.strip(), fragment.replace('"', "").strip()]
    candidates.append(candidates[-1].rsplit(".", 1)[-1])
    for candidate in candidates:
        if not candidate:
            continue
        match = re.search(r"(?<![\w.])" + re.escape(candidate) + r"(?!\w)", sql, flags=re.IGNORECASE)
        if match:
            return match.start(), match.end()
    return None
