"""``sandbox system``: is a gateway alive and ready, and what its metrics say (operations staff)."""

from __future__ import annotations

import typer

from sandbox_api.cli.common import DEFAULT_URL, Token, Url, remote
from sandbox_api.cli.output import AsCsv, AsJson, OutFile, Shown, emit

system_app = typer.Typer(
    help="A gateway's health and metrics (probes need no token; metrics: admins and auditors).",
    no_args_is_help=True,
)


@system_app.command("health")
def system_health(
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Liveness, then readiness: each check's state; exit code 1 with the reasons when not ready."""
    with remote(url, token) as client:
        alive = client.liveness()
        ready = client.readiness()
    shown = {"alive": alive.status, "version": alive.version, "ready": ready.status, **ready.checks}
    emit(Shown.fields(shown), as_json=as_json, as_csv=as_csv, out=out)


@system_app.command("metrics")
def system_metrics(url: Url = DEFAULT_URL, token: Token = "") -> None:
    """The gateway's Prometheus metrics, as a scraper reads them (admin or auditor token)."""
    with remote(url, token) as client:
        text = client.metrics_text()
    typer.echo(text, nl=False)
