"""``sandbox job``: dry-run, submit, follow, cancel and read jobs (operators; auditors and admins read).

Waiting shows each phase (queued, running, checking, released or withheld) with the time it was reached.
``job result --out FILE`` writes the result exactly as served, receipt included: the file that
``sandbox receipt verify FILE --public-key KEYS`` checks.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from sandbox_api.cli.common import DEFAULT_URL, Token, Url, fail, job_id, note, remote
from sandbox_api.cli.output import AsCsv, AsJson, OutFile, Shown, as_json_text, emit
from sandbox_api.job_types import Kind, Mode

if TYPE_CHECKING:
    from sandbox_api.client.auditor import AuditorClient
    from sandbox_api.schemas import JobOut

job_app = typer.Typer(help="Jobs: dry-run, submit, follow, cancel, read results.", no_args_is_help=True)

ScopeName = Annotated[str, typer.Option("--scope", help="Scope name.")]
JobId = Annotated[str, typer.Argument(help="The job's id, or a unique prefix of it.")]
SqlText = Annotated[
    str | None, typer.Argument(help="SQL text, @file or - for standard input (not with --python).")
]
PythonFile = Annotated[
    Path | None,
    typer.Option("--python", exists=True, dir_okay=False, help="A Python job: the file holding its code."),
]
ModeOpt = Annotated[Mode, typer.Option("--mode", help="real data, or the datasets' mock twins.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait.")]
CrossDomain = Annotated[
    bool,
    typer.Option(
        "--cross-domain",
        help="SQL joining two domains' datasets, run as a private join: each domain computes its own "
        "part and only protocol messages and released cells cross.",
    ),
]

# Only a released job has a result; withheld waits for an output checker.
_RELEASED: Final = "released"
_WITHHELD: Final = "withheld"
# Phases whose reason says nothing the state does not ("released after the output check").
_QUIET_PHASES: Final = frozenset({"queued", "running", "checking", "released"})


def _read_sql(sql: str) -> str:
    """SQL from the argument, from a file given as @path, or from standard input given as -."""
    if sql == "-":
        return sys.stdin.read()
    if sql.startswith("@"):
        return Path(sql[1:]).read_text(encoding="utf-8")
    return sql


def _source(sql: str | None, python: Path | None) -> tuple[str | None, str | None]:
    """(sql, code): exactly one of a SQL text and a Python file."""
    if (sql is None) == (python is None):
        raise fail("give either SQL (argument, @file or -) or --python FILE, not both or neither")
    if python is not None:
        return None, python.read_text(encoding="utf-8")
    assert sql is not None
    return _read_sql(sql), None


@job_app.command("check")
def job_check(
    scope: ScopeName,
    sql: SqlText = None,
    python: PythonFile = None,
    mode: ModeOpt = Mode.REAL,
    cross_domain: CrossDomain = False,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Dry run: findings and the rewritten SQL, nothing executes. Exit code 1 if refused."""
    text, code = _source(sql, python)
    with remote(url, token) as client:
        report = client.check_job(scope, text, code=code, mode=mode, cross_domain=cross_domain)
    if as_json:
        emit(Shown.fields({}, document=report.model_dump(mode="json")), as_json=True)
    else:
        typer.echo("ALLOWED" if report.allowed else "REFUSED")
        if report.kind is Kind.CROSS_DOMAIN and not cross_domain:
            typer.echo(
                "  runs as a cross-domain job: the query reads two domains' datasets, so each domain "
                "computes its own part and only aggregates cross (docs/cross-domain.md)"
            )
        for finding in report.findings:
            where = f" ({finding.fragment})" if finding.fragment else ""
            typer.echo(f"  - [{finding.rule}] {finding.message}{where}")
        if report.rewritten_sql:
            typer.echo("the gateway would run:")
            typer.echo("  " + report.rewritten_sql.replace("\n", "\n  "))
        if report.dp is not None:
            from sandbox_api.cli.dp_summary import preview_lines

            for line in preview_lines(report.dp, report.budget_left):
                typer.echo(line)
    if not report.allowed:
        raise typer.Exit(1)


@job_app.command("submit")
def job_submit(
    scope: ScopeName,
    sql: SqlText = None,
    python: PythonFile = None,
    mode: ModeOpt = Mode.REAL,
    cross_domain: CrossDomain = False,
    wait: Annotated[bool, typer.Option(help="Wait for the job to finish and print its result.")] = True,
    timeout: Timeout = 600.0,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Submit a SQL or Python job (--cross-domain: SQL joining two domains, run as a private join);
    with --wait (the default) follow it and print its result."""
    text, code = _source(sql, python)
    with remote(url, token) as client:
        job = client.submit_job(scope, text, code=code, mode=mode, cross_domain=cross_domain)
        if not wait:
            typer.echo(job.job_id)
            note(f"job {job.job_id} is {job.state}; follow it with: sandbox job wait {job.job_id[:8]}")
            if job.dp_budget is not None:
                from sandbox_api.cli.dp_summary import budget_lines

                for line in budget_lines(job.dp_budget.model_dump()):
                    note(line)
            return
        finished = _follow(client, job.job_id, timeout=timeout, accepted=job.state)
        _settled_or_exit(finished)
        _show_result(client, job.job_id, as_json=as_json, as_csv=as_csv, out=out)


def _follow(client: AuditorClient, full_id: str, *, timeout: float, accepted: str | None = None) -> JobOut:
    """Wait for the job, telling each phase it reaches with the seconds since waiting began;
    ``accepted`` is the state the submission answered (told first, at 0 s)."""
    started = time.monotonic()
    told: list[str] = []

    def phase(state: str, reason: str) -> None:
        if told and told[-1] == state:
            return
        told.append(state)
        why = f": {reason}" if reason and state not in _QUIET_PHASES else ""
        note(f"  {time.monotonic() - started:6.1f} s  {state}{why}")

    note(f"job {full_id}")
    if accepted is not None:
        phase(accepted, "")
    return client.wait_for_job(full_id, timeout=timeout, on_change=lambda job: phase(job.state, job.reason))


def _settled_or_exit(job: JobOut) -> None:
    """Return for a released job; otherwise end with the state, its reason and the next step."""
    if job.state == _RELEASED:
        return
    if job.state == _WITHHELD:
        raise fail(
            f"job {job.job_id} is withheld for output review: an output checker decides "
            f"(sandbox review show {job.job_id[:8]}); then: sandbox job result {job.job_id[:8]}"
        )
    raise fail(f"job {job.job_id} is {job.state}: {job.reason}")


@job_app.command("list")
def job_list(
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Jobs, newest first (operators: their own; auditors and admins: all)."""
    with remote(url, token) as client:
        jobs = client.list_jobs(state=state, limit=limit)
    shown = Shown(
        columns=("job", "state", "kind", "scope", "owner", "created", "reason"),
        rows=[
            (j.job_id[:12], j.state, f"{j.kind}/{j.mode}", j.scope, j.owner, j.created_at, j.reason)
            for j in jobs
        ],
        document=[j.model_dump(mode="json") for j in jobs],
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


def _status_fields(job: JobOut) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "job": job.job_id,
        "state": job.state,
        "reason": job.reason,
        "kind": f"{job.kind}/{job.mode}",
        "scope": f"{job.scope} @ {job.scope_version[:12]}",
        "owner": job.owner,
        "created": job.created_at,
        "updated": job.updated_at,
        "attempts": job.attempts,
        "findings": [f"[{f.rule}] {f.message}" for f in job.findings],
        "applied": job.applied,
    }
    if job.timings:
        fields["timings"] = {phase: round(seconds, 3) for phase, seconds in job.timings.items()}
    if job.result_hash:
        fields["result hash"] = job.result_hash
    if job.dp_budget is not None:
        from sandbox_api.cli.dp_summary import budget_lines

        fields["differential privacy"] = budget_lines(job.dp_budget.model_dump())[0].split(": ", 1)[1]
    return fields


@job_app.command("status")
def job_status(
    job: JobId,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """One job: state, reason, findings, passes applied (timings for admins and auditors)."""
    with remote(url, token) as client:
        found = client.get_job(job_id(client, job))
    shown = Shown.fields(_status_fields(found), document=found.model_dump(mode="json"))
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@job_app.command("wait")
def job_wait(job: JobId, timeout: Timeout = 600.0, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Follow a job until it is released, withheld or ends; exit code 0 only when released."""
    with remote(url, token) as client:
        finished = _follow(client, job_id(client, job), timeout=timeout)
    _settled_or_exit(finished)
    typer.echo(f"job {finished.job_id} is released: sandbox job result {finished.job_id[:8]}")


@job_app.command("cancel")
def job_cancel(job: JobId, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Cancel a queued or running job (its owner, or an admin)."""
    with remote(url, token) as client:
        answer = client.cancel_job(job_id(client, job))
    doing = "its sandbox is being stopped" if answer.stopping else "it will not run"
    typer.echo(f"job {answer.job.job_id} is {answer.job.state}; {doing}")


@job_app.command("result")
def job_result(
    job: JobId,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """The released table with its suppression report; --out FILE saves it as served, receipt included
    (what `sandbox receipt verify FILE --public-key KEYS` checks), or as CSV with --csv."""
    with remote(url, token) as client:
        _show_result(client, job_id(client, job), as_json=as_json, as_csv=as_csv, out=out)


def _show_result(
    client: AuditorClient, full_id: str, *, as_json: bool, as_csv: bool, out: Path | None
) -> None:
    document = client.result_document(full_id)
    # A file is for keeping and verifying: unless CSV is asked for, it holds the document as served.
    keep_whole = out is not None and not as_csv and out.suffix.lower() != ".csv"
    notes = _report_lines(document)
    if (document.get("report") or {}).get("differential_privacy") is not None:
        # The budget left is the job's, not the result's (the receipt signs the result as released).
        from sandbox_api.cli.dp_summary import budget_lines

        budget = client.get_job(full_id).dp_budget
        if budget is not None:
            notes += budget_lines(budget.model_dump())
    shown = Shown(
        columns=[str(c) for c in document.get("columns", [])],
        rows=document.get("rows", []),
        document=document,
        title=f"job {full_id}: {document.get('row_count', 0)} rows released",
        notes=notes,
    )
    emit(shown, as_json=as_json or keep_whole, as_csv=as_csv, out=out)
    if out is not None and document.get("receipt"):
        note(
            "verify it offline: sandbox keys export --out keys.json; "
            f"sandbox receipt verify {out} --public-key keys.json"
        )


def _report_lines(document: dict[str, Any]) -> list[str]:
    """The suppression report and a Python job's output, for people."""
    report = document.get("report") or {}
    spent = report.get("differential_privacy")
    lines = [
        "suppression report: "
        + ", ".join(
            f"{k} {v}"
            for k, v in sorted(report.items())
            if k not in ("reasons", "differential_privacy") and v is not None
        )
    ]
    if spent is not None:
        from sandbox_api.cli.dp_summary import report_lines

        lines += report_lines(spent)
    lines += [f"  - {reason}" for reason in report.get("reasons", [])]
    output = document.get("output") or {}
    if output.get("summary") is not None:
        lines.append("summary: " + as_json_text(output["summary"]))
    if output.get("printed"):
        lines.append("printed:\n" + str(output["printed"]))
    if document.get("receipt"):
        lines.append(f"signed receipt: key {document['receipt'].get('kid', '?')} (save it with --out FILE)")
    return lines


@job_app.command("receipt")
def job_receipt(job: JobId, url: Url = DEFAULT_URL, token: Token = "", out: OutFile = None) -> None:
    """The signed receipt of a released job (its operator, auditors, admins), as JSON."""
    with remote(url, token) as client:
        receipt = client.receipt(job_id(client, job))
    emit(Shown.fields({}, document=receipt), as_json=True, out=out)
