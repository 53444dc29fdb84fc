"""The ``sandbox`` command line: every command of every role, grouped by area.

Local commands (``init``, ``serve``, ``token create``, ``demo``, the offline verifiers) work on the state
directory or on files; the others talk to a running gateway, whose address and a bearer token come from
``--url``/``--token`` or ``SANDBOX_URL``/``SANDBOX_TOKEN``. Each area lives in its own module; this one
only puts them together.
"""

from __future__ import annotations

import typer

from sandbox_api.cli import audit, backup, demo_run, deployment
from sandbox_api.cli.cluster import cluster_app
from sandbox_api.cli.datasets import dataset_app
from sandbox_api.cli.governance import alert_app, application_app
from sandbox_api.cli.jobs import job_app
from sandbox_api.cli.principals import domain_app, principal_app, token_app, whoami
from sandbox_api.cli.publications import open_data_app, publication_app
from sandbox_api.cli.review import review_app
from sandbox_api.cli.scopes import scope_app
from sandbox_api.cli.system import system_app
from sandbox_api.cli.witness import witness_app


def build() -> typer.Typer:
    """The whole ``sandbox`` application."""
    app = typer.Typer(
        name="sandbox",
        help="Data Sandbox: data usable, not visible. Every command has --help; docs/cli.md walks each role.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.command()(deployment.init)
    app.command()(deployment.serve)
    app.command("backup")(backup.backup)
    app.command("restore")(backup.restore)
    app.command("demo")(demo_run.demo_command)
    app.command()(whoami)
    app.add_typer(domain_app, name="domain")
    app.add_typer(principal_app, name="principal")
    app.add_typer(token_app, name="token")
    app.add_typer(dataset_app, name="dataset")
    app.add_typer(scope_app, name="scope")
    app.add_typer(job_app, name="job")
    app.add_typer(review_app, name="review")
    app.add_typer(publication_app, name="publication")
    app.add_typer(open_data_app, name="open-data")
    app.add_typer(application_app, name="application")
    app.add_typer(alert_app, name="alert")
    audit.register(app)
    app.add_typer(cluster_app, name="cluster")
    app.add_typer(system_app, name="system")
    app.add_typer(witness_app, name="witness")
    return app


app = build()


def main() -> None:
    """Entry point of the ``sandbox`` console script."""
    app()


if __name__ == "__main__":
    main()
