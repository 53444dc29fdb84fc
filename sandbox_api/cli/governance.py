"""``sandbox application`` and ``sandbox alert``: access applications and alerts on unusual use.

An operator applies (``application submit``) and follows the outcome (``application show``); a policy
officer drafts a scope from an application (``application draft``) or refuses it with a reason; a
second officer approves the drafted scope version with ``sandbox scope approve``. Auditors read alerts
(``alert list``) and acknowledge them with a note (``alert acknowledge``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from sandbox_api.cli.common import DEFAULT_URL, Token, Url, fail, note, remote
from sandbox_api.cli.output import AsCsv, AsJson, OutFile, Shown, emit

if TYPE_CHECKING:
    from sandbox_api.schemas_governance import AlertOut, ApplicationOut

application_app = typer.Typer(help="Access applications: apply, draft a scope, refuse.", no_args_is_help=True)
alert_app = typer.Typer(help="Alerts on unusual use, for auditors.", no_args_is_help=True)

ApplicationId = Annotated[str, typer.Argument(help="The application's id.")]
_COLUMNS = ("id", "applicant", "datasets", "state", "scope", "reason", "updated")


def _row(app: ApplicationOut) -> tuple[Any, ...]:
    scope = f"{app.scope_name} {(app.scope_version or '')[:12]}" if app.scope_name else ""
    return (app.id, app.applicant, ", ".join(app.datasets), app.state, scope, app.reason, app.updated_at)


def _shown(app: ApplicationOut, *, as_json: bool) -> None:
    emit(Shown(columns=_COLUMNS, rows=[_row(app)], document=app.model_dump(mode="json")), as_json=as_json)


def _columns(values: list[str]) -> dict[str, list[str]]:
    """``domain/dataset:column`` options as ``{"domain/dataset": [column, ...]}``."""
    wanted: dict[str, list[str]] = {}
    for value in values:
        dataset, sep, column = value.rpartition(":")
        if not sep or not dataset or not column:
            raise fail(f"--column {value!r}: write it as domain/dataset:column")
        wanted.setdefault(dataset, []).append(column)
    return wanted


@application_app.command("submit")
def application_submit(
    dataset: Annotated[list[str], typer.Option("--dataset", help="domain/dataset (repeat for several).")],
    purpose: Annotated[str, typer.Option(help="What the access is for.")],
    days: Annotated[int, typer.Option(help="How many days the access is needed.")],
    column: Annotated[
        list[str] | None, typer.Option("--column", help="domain/dataset:column wanted (repeat).")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Apply for access (operator); a policy officer drafts a scope from it or refuses it."""
    with remote(url, token) as client:
        app = client.submit_application(
            dataset, purpose=purpose, columns=_columns(column or []), duration_days=days
        )
    _shown(app, as_json=as_json)
    if not as_json:
        note(f"follow it with: sandbox application show {app.id}")


@application_app.command("list")
def application_list(
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Applications with their outcome (operators: their own)."""
    with remote(url, token) as client:
        apps = client.list_applications()
    shown = Shown(
        columns=_COLUMNS, rows=[_row(a) for a in apps], document=[a.model_dump(mode="json") for a in apps]
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@application_app.command("show")
def application_show(
    application: ApplicationId, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False
) -> None:
    """One application: what was asked, and what became of it."""
    with remote(url, token) as client:
        app = client.get_application(application)
    emit(Shown.fields(app.model_dump(mode="json"), title=f"application {app.id}"), as_json=as_json)


@application_app.command("draft")
def application_draft(
    application: ApplicationId,
    document: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Scope file (.yaml or .json).")
    ],
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Draft a scope from an application (policy officer); a second officer approves it."""
    fmt: Literal["yaml", "json"] = "json" if document.suffix.lower() == ".json" else "yaml"
    with remote(url, token) as client:
        app = client.draft_application(application, document.read_text(encoding="utf-8"), fmt=fmt)
    _shown(app, as_json=as_json)
    if not as_json and app.scope_name:
        note(
            f"next: another policy officer approves it: sandbox scope approve {app.scope_name} "
            f"{(app.scope_version or '')[:12]}"
        )


@application_app.command("refuse")
def application_refuse(
    application: ApplicationId,
    reason: Annotated[str, typer.Option(help="Why (the applicant reads it; required).")],
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Refuse an application, with a reason the applicant can act on."""
    if not reason.strip():
        raise fail("give --reason: the applicant needs to know why")
    with remote(url, token) as client:
        app = client.refuse_application(application, reason=reason)
    _shown(app, as_json=as_json)


def _alert_row(alert: AlertOut) -> tuple[Any, ...]:
    return (alert.id, alert.rule, alert.operator, alert.scope, alert.state, alert.suspended, alert.message)


@alert_app.command("list")
def alert_list(
    state: Annotated[str | None, typer.Option(help="open or acknowledged.")] = None,
    operator: Annotated[str | None, typer.Option(help="Only alerts about this operator.")] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Alerts on unusual use, newest first, with their evidence (--json)."""
    with remote(url, token) as client:
        alerts = client.list_alerts(state=state, operator=operator)
    shown = Shown(
        columns=("id", "rule", "operator", "scope", "state", "suspended", "message"),
        rows=[_alert_row(a) for a in alerts],
        document=[a.model_dump(mode="json") for a in alerts],
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@alert_app.command("acknowledge")
def alert_acknowledge(
    alert: Annotated[str, typer.Argument(help="The alert's id.")],
    note_text: Annotated[str, typer.Option("--note", help="What was looked at and decided (required).")],
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Acknowledge an alert (auditor); an admin lifts a suspension with `sandbox principal enable`."""
    if not note_text.strip():
        raise fail("give --note: what was looked at and what was decided")
    with remote(url, token) as client:
        acknowledged = client.acknowledge_alert(alert, note=note_text)
    emit(
        Shown.fields(acknowledged.model_dump(mode="json"), title=f"alert {acknowledged.id}"), as_json=as_json
    )
