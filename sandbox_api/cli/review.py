"""``sandbox review``: output checkers decide on results the automated checks could not clear.

``show`` prints the withheld output beside the automatic disclosure report, so the checker decides on
what the operator would receive; ``release`` and ``deny`` record the decision with its reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from sandbox_api.cli.common import DEFAULT_URL, Token, Url, fail, note, remote, review_id
from sandbox_api.cli.output import AsCsv, AsJson, OutFile, Shown, as_json_text, as_table_text, emit

if TYPE_CHECKING:
    from sandbox_api.schemas import ReviewOut

review_app = typer.Typer(help="Output review: withheld results waiting for a checker.", no_args_is_help=True)

JobId = Annotated[str, typer.Argument(help="The withheld job's id, or a unique prefix of it.")]


def _decisions(review: ReviewOut) -> str:
    released = sum(1 for d in review.decisions if d.decision == "release")
    return f"{released}/{review.required_checkers}"


@review_app.command("list")
def review_list(
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Withheld jobs waiting for your decision (never your own), oldest first."""
    with remote(url, token) as client:
        reviews = client.list_reviews()
    shown = Shown(
        columns=("job", "owner", "scope", "kind", "withheld", "released by", "flagged"),
        rows=[
            (
                r.job_id[:12],
                r.owner,
                r.scope,
                f"{r.kind}/{r.mode}",
                r.withheld_at,
                _decisions(r),
                len(r.report.get("findings", [])),
            )
            for r in reviews
        ],
        document=[r.model_dump(mode="json") for r in reviews],
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@review_app.command("show")
def review_show(job: JobId, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """One withheld job: its code or SQL, the withheld output and the automatic disclosure report."""
    with remote(url, token) as client:
        review = client.get_review(review_id(client, job))
    if as_json:
        emit(Shown.fields({}, document=review.model_dump(mode="json")), as_json=True)
        return
    typer.echo(f"job {review.job_id} by {review.owner} under {review.scope} ({review.kind}/{review.mode})")
    typer.echo(f"withheld {review.withheld_at}: {review.reason}")
    typer.echo(f"releases so far: {_decisions(review)}")
    for decision in review.decisions:
        typer.echo(f"  {decision.at} {decision.checker} {decision.decision}: {decision.reason}")
    typer.echo("--- the job ---")
    typer.echo(review.code or review.sql)
    typer.echo("--- automatic disclosure report ---")
    for finding in review.report.get("findings", []):
        typer.echo(
            f"  - [{finding.get('rule', '?')}] {finding.get('severity', '')} "
            f"{finding.get('where', '')}: {finding.get('message', '')}"
        )
    if not review.report.get("findings"):
        typer.echo("  (no findings)")
    typer.echo("--- the withheld output ---")
    typer.echo(_output_text(review.output or {}), nl=False)
    note(
        f"decide: sandbox review release {review.job_id[:8]} --reason '…'  or  "
        f"sandbox review deny {review.job_id[:8]} --reason '…'"
    )


def _output_text(output: dict[str, Any]) -> str:
    parts = []
    table = output.get("table")
    if isinstance(table, dict):
        shown = Shown(columns=table.get("columns", []), rows=table.get("rows", []), document=table)
        parts.append(as_table_text(shown, terminal=False))
    if output.get("summary") is not None:
        parts.append("summary: " + as_json_text(output["summary"]) + "\n")
    if output.get("printed"):
        parts.append("printed:\n" + str(output["printed"]) + "\n")
    return "".join(parts) or "(nothing)\n"


@review_app.command("release")
def review_release(
    job: JobId,
    reason: Annotated[str, typer.Option(help="Why it is safe to release (audited).")] = "",
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Release a withheld output (released once the scope's number of checkers agree)."""
    with remote(url, token) as client:
        decided = client.release_review(review_id(client, job), reason=reason)
    _told(decided, as_json=as_json)


@review_app.command("deny")
def review_deny(
    job: JobId,
    reason: Annotated[str, typer.Option(help="What the operator should change (required, audited).")],
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Deny a withheld output, with a reason the operator can act on."""
    if not reason.strip():
        raise fail("give --reason: the operator needs to know what to change")
    with remote(url, token) as client:
        decided = client.deny_review(review_id(client, job), reason=reason)
    _told(decided, as_json=as_json)


def _told(review: ReviewOut, *, as_json: bool) -> None:
    if as_json:
        emit(Shown.fields({}, document=review.model_dump(mode="json")), as_json=True)
        return
    typer.echo(f"job {review.job_id} is {review.state} (releases {_decisions(review)})")
    if review.state == "withheld":
        note("another output checker must also release it")
