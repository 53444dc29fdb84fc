"""The ``sandbox`` command line: set up and run a deployment, and talk to a running gateway.

Local commands (``init``, ``serve``, ``token create``, ``audit verify``, ``demo``) work on the state
directory or on files; the others are thin wrappers around ``SandboxClient`` and read the gateway's
address and a bearer token from ``--url``/``--token`` or ``SANDBOX_URL``/``SANDBOX_TOKEN``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import typer
import uvicorn

from crypto.audit import AuditEntry, verify_chain
from crypto.errors import CryptoError, IntegrityError
from crypto.keyring import LocalKeyring
from sandbox_api.auth import Role
from sandbox_api.bootstrap import init_deployment, open_audit_log
from sandbox_api.cli import demo, demo_data
from sandbox_api.cli.audit import register as register_auditor_commands
from sandbox_api.cli.cluster import cluster_app
from sandbox_api.client import ClientError, SandboxClient
from sandbox_api.clock import Clock, SystemClock
from sandbox_api.errors import Conflict, DeploymentNotInitialised, ServiceError
from sandbox_api.services.principals import PrincipalService
from sandbox_api.settings import Settings, unknown_environment
from sandbox_api.store import migrate
from sandbox_api.store.db import open_database
from sandbox_api.store.models import PrincipalRow

if TYPE_CHECKING:
    from fastapi import FastAPI

DEFAULT_URL: Final = "http://127.0.0.1:8000"
DEMO_TOKENS_FILE: Final = "demo-tokens.json"
_CLI_ACTOR: Final = "local-cli"
# Seconds a stopping gateway waits for open requests: a long-poll may otherwise hold it for 30 s.
SHUTDOWN_GRACE_S: Final = 5
_ONE_LINE_EXAMPLE: Final = "SELECT sex, COUNT(DISTINCT person_id) AS people FROM citizens GROUP BY sex"
# What a state directory may contain; ``--fresh`` refuses to delete a directory holding anything else.
_STATE_ENTRIES: Final = frozenset(
    {"metadata.db", "metadata.db-wal", "metadata.db-shm", "keyring.json", "data", "uploads", DEMO_TOKENS_FILE}
)

app = typer.Typer(
    name="sandbox",
    help="Data Sandbox: data usable, not visible.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
token_app = typer.Typer(
    help="Bearer tokens (works on the state directory, no server needed).", no_args_is_help=True
)
dataset_app = typer.Typer(help="Datasets in the catalog.", no_args_is_help=True)
scope_app = typer.Typer(help="Scopes: grants from policy officers to operators.", no_args_is_help=True)
job_app = typer.Typer(help="Jobs: dry-run, submit, read results.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(dataset_app, name="dataset")
app.add_typer(scope_app, name="scope")
app.add_typer(job_app, name="job")
app.add_typer(audit_app, name="audit")

StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="State directory (default: SANDBOX_STATE_DIR or ./.sandbox-state)."),
]
Url = Annotated[str, typer.Option("--url", envvar="SANDBOX_URL", help="Gateway address.")]
Token = Annotated[
    str, typer.Option("--token", envvar="SANDBOX_TOKEN", help="Bearer token.", show_default=False)
]


def _settings(state_dir: Path | None, **overrides: Any) -> Settings:
    """Settings from the environment, with the command line's choices on top."""
    if state_dir is not None:
        overrides["state_dir"] = state_dir
    return Settings(**overrides)


def _create_app(settings: Settings) -> FastAPI:
    # Imported here, not at the top: the gateway pulls in the whole policy engine and executor, which
    # commands such as `token create` or `audit verify` do not need and should not wait for.
    from sandbox_api.app import create_app

    return create_app(settings)


def _fail(message: str, *, code: int = 1) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False))


@contextmanager
def _remote(url: str, token: str) -> Iterator[SandboxClient]:
    """A client whose refusals end the command with the gateway's reasons and exit code 1."""
    try:
        with SandboxClient(url, token, timeout=600.0) as client:
            yield client
    except ClientError as refused:
        raise _fail(f"{refused.status} {refused.code}: {refused.describe()}") from None


# ---------------------------------------------------------------------------------------------------
# init, serve, token
# ---------------------------------------------------------------------------------------------------


@app.command()
def init(
    state_dir: StateDir = None,
    admin_name: Annotated[str, typer.Option(help="Name of the first admin.")] = "admin",
) -> None:
    """Initialise a deployment: state directory, metadata database, keyring, first admin token."""
    settings = _settings(state_dir)
    try:
        result = init_deployment(settings, admin_name=admin_name)
    except (ServiceError, CryptoError) as failed:
        raise _fail(f"{failed.code}: {failed.detail}") from None
    if not result.created:
        typer.echo(f"Deployment in {settings.state_dir} is already initialised; nothing changed.")
        return
    typer.echo(f"Initialised a deployment in {settings.state_dir}.")
    typer.echo(f"Admin token for {admin_name!r} (shown once, keep it secret):")
    typer.echo(result.admin_token or "")


@app.command()
def serve(
    state_dir: StateDir = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: SANDBOX_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: SANDBOX_PORT).")] = None,
) -> None:
    """Run the gateway (OpenAPI documentation at /docs)."""
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = _settings(state_dir, **overrides)
    for name in unknown_environment(os.environ):
        typer.secho(
            f"warning: {name} is not a setting and is ignored (see docs/settings.md for the names)",
            err=True,
            fg=typer.colors.YELLOW,
        )
    uvicorn.run(
        _create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="The principal's role.")],
    name: Annotated[str, typer.Option(help="Principal name (created if it does not exist).")],
    domain: Annotated[str | None, typer.Option(help="The steward's domain.")] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="A group of the principal (repeatable).")
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Issue a bearer token directly in the state directory (how the first admins get theirs)."""
    settings = _settings(state_dir)
    try:
        token = issue_token_offline(settings, name=name, role=role, domain=domain, groups=tuple(group or ()))
    except (ServiceError, CryptoError) as failed:
        raise _fail(f"{failed.code}: {failed.detail}") from None
    typer.echo(token)


@contextmanager
def open_principal_service(settings: Settings, *, clock: Clock | None = None) -> Iterator[PrincipalService]:
    """The principal service straight on the state directory, for work without a running gateway."""
    clock = clock or SystemClock()
    if not settings.keyring_path.exists():
        raise DeploymentNotInitialised(
            f"no deployment in {settings.state_dir}; run `sandbox init` first (or pass --state-dir)"
        )
    keys = LocalKeyring.open(settings.keyring_path, clock=clock.now)
    db = open_database(settings.resolved_database_url)
    try:
        migrate.upgrade(db)
        audit = open_audit_log(settings, db=db, keys=keys, clock=clock)
        yield PrincipalService(db=db, audit=audit, clock=clock, keys=keys)
    finally:
        db.dispose()


def issue_token_offline(
    settings: Settings,
    *,
    name: str,
    role: Role,
    domain: str | None = None,
    groups: Sequence[str] = (),
    clock: Clock | None = None,
) -> str:
    """A new token for ``name``, creating the principal if needed, written straight into the state
    directory and audited as the API would (actor ``local-cli``). Needs an initialised deployment."""
    with open_principal_service(settings, clock=clock) as principals, principals.db.write() as session:
        existing = session.get(PrincipalRow, name)
        if existing is None:
            _, token = principals.create_principal(
                session, actor=_CLI_ACTOR, name=name, role=role, domain=domain, groups=groups
            )
            return token
        if existing.role != role.value or (domain is not None and existing.domain != domain):
            where = f" in domain {existing.domain}" if existing.domain else ""
            raise Conflict(
                f"principal {name!r} exists with role {existing.role}{where}; "
                "a new token keeps the principal's role: use that role or another name"
            )
        return principals.issue_token(session, actor=_CLI_ACTOR, name=name)


# ---------------------------------------------------------------------------------------------------
# dataset, scope, job (against a running gateway)
# ---------------------------------------------------------------------------------------------------


@dataset_app.command("list")
def dataset_list(url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Datasets you may see: schema, classes, versions and row counts (never rows)."""
    with _remote(url, token) as client:
        _echo_json([dataset.model_dump(mode="json", by_alias=True) for dataset in client.list_datasets()])


@dataset_app.command("upload")
def dataset_upload(
    domain: Annotated[str, typer.Argument(help="The dataset's domain.")],
    name: Annotated[str, typer.Argument(help="The dataset's name.")],
    manifest: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Manifest JSON file.")],
    table: Annotated[
        list[str], typer.Option("--table", help="TABLE=PATH of a CSV or Parquet file (repeatable).")
    ],
    create: Annotated[bool, typer.Option(help="Declare the dataset first.")] = False,
    description: Annotated[str, typer.Option(help="Description used with --create.")] = "",
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Upload a new version of a dataset (steward of its domain)."""
    tables: dict[str, Path] = {}
    for item in table:
        table_name, sep, path = item.partition("=")
        if not sep or not table_name or not path:
            raise _fail(f"--table {item!r}: write it as TABLE=PATH")
        if not Path(path).is_file():
            raise _fail(f"--table {item!r}: {path} is not a file")
        tables[table_name] = Path(path)
    try:
        manifest_body = json.loads(manifest.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as bad:
        raise _fail(f"{manifest} is not valid JSON: {bad}") from None
    with _remote(url, token) as client:
        if create:
            client.create_dataset(domain, name, description=description)
        stored = client.upload_version(domain, name, manifest=manifest_body, tables=tables)
        _echo_json(stored.model_dump(mode="json", by_alias=True))


@scope_app.command("create")
def scope_create(
    document: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Scope file (.yaml or .json).")
    ],
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Propose a scope (policy officer); a second officer must approve it."""
    fmt: Literal["yaml", "json"] = "json" if document.suffix.lower() == ".json" else "yaml"
    with _remote(url, token) as client:
        created = client.create_scope(document.read_text(encoding="utf-8"), fmt=fmt)
        _echo_json(created.model_dump(mode="json", by_alias=True))


@scope_app.command("approve")
def scope_approve(
    name: Annotated[str, typer.Argument(help="Scope name.")],
    version_id: Annotated[str, typer.Argument(help="The version to approve.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Approve a pending scope version (a policy officer other than its author)."""
    with _remote(url, token) as client:
        _echo_json(
            client.approve_scope(name, version_id, reason=reason).model_dump(mode="json", by_alias=True)
        )


@scope_app.command("list")
def scope_list(url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Scopes you may see (operators: only those granted to you)."""
    with _remote(url, token) as client:
        _echo_json([scope.model_dump(mode="json", by_alias=True) for scope in client.list_scopes()])


def _read_sql(sql: str) -> str:
    """SQL from the argument, from a file given as @path, or from standard input given as -."""
    if sql == "-":
        return sys.stdin.read()
    if sql.startswith("@"):
        return Path(sql[1:]).read_text(encoding="utf-8")
    return sql


ScopeName = Annotated[str, typer.Option("--scope", help="Scope name.")]
SqlText = Annotated[str, typer.Argument(help="SQL text, @file or - for standard input.")]


@job_app.command("check")
def job_check(scope: ScopeName, sql: SqlText, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Dry run: findings and the rewritten SQL, nothing executes. Exit code 1 if refused."""
    with _remote(url, token) as client:
        report = client.check_job(scope, _read_sql(sql))
    _echo_json(report.model_dump(mode="json"))
    if not report.allowed:
        raise typer.Exit(1)


@job_app.command("submit")
def job_submit(
    scope: ScopeName,
    sql: SqlText,
    wait: Annotated[bool, typer.Option(help="Wait for the job to finish and print its result.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 600.0,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Submit a job; with --wait (the default) print its result and suppression report."""
    with _remote(url, token) as client:
        job = client.submit_job(scope, _read_sql(sql))
        if not wait:
            _echo_json(job.model_dump(mode="json"))
            return
        finished = client.wait_for_job(job.job_id, timeout=timeout, progress=True)
        if finished.state != "released":
            raise _fail(f"job {job.job_id} is {finished.state}: {finished.reason}")
        _print_result(client, job.job_id)


@job_app.command("result")
def job_result(
    job_id: Annotated[str, typer.Argument(help="The job's id.")], url: Url = DEFAULT_URL, token: Token = ""
) -> None:
    """The released table of a job with its suppression report."""
    with _remote(url, token) as client:
        _print_result(client, job_id)


def _print_result(client: SandboxClient, job_id: str) -> None:
    result = client.get_result(job_id)
    typer.echo(result.table.to_string(index=False))
    shown = result.report.model_dump(exclude_none=True)
    typer.echo("suppression report: " + json.dumps(shown, ensure_ascii=False))
    if result.receipt is not None:
        typer.echo("receipt: " + json.dumps(dict(result.receipt), ensure_ascii=False))


# ---------------------------------------------------------------------------------------------------
# audit verify (offline)
# ---------------------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    export: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines export of the audit log.")
    ],
    head: Annotated[
        str | None, typer.Option(help="A head hash kept elsewhere: detects a cut-off tail.")
    ] = None,
) -> None:
    """Verify an exported audit chain offline. Exit code 0 if intact, 1 with the reason if not."""
    try:
        lines = export.read_text(encoding="utf-8").splitlines()
        entries = [AuditEntry.from_json(line) for line in lines if line.strip()]
        report = verify_chain(entries, expected_head=head)
    except UnicodeDecodeError:
        raise _fail(f"BROKEN: {export} is not UTF-8 text") from None
    except IntegrityError as broken:
        raise _fail(f"BROKEN: {broken.detail}") from None
    typer.echo(f"OK: {report.count} events, last seq {report.last_seq}, head {report.head_hash}")


# ---------------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------------


class _BackgroundServer:
    """The gateway served by uvicorn on a socket bound up front, in a thread of this process."""

    def __init__(self, settings: Settings, *, host: str, port: int) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as busy:
            self._socket.close()
            raise _fail(
                f"cannot listen on {host}:{port} ({busy.strerror}); pick another with --port"
            ) from None
        bound_host, bound_port = self._socket.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        config = uvicorn.Config(
            _create_app(settings),
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="sandbox-gateway", daemon=True
        )

    def start(self, *, timeout: float = 60.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise _fail("the gateway did not start; see the messages above")
            time.sleep(0.02)

    def wait(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            typer.echo("\nStopping the gateway…")
        finally:
            self.stop()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()


def _reset_state_dir(state_dir: Path) -> None:
    """Delete a previous demo deployment, but never a directory that holds anything else."""
    if not state_dir.exists():
        return
    unexpected = sorted(p.name for p in state_dir.iterdir() if p.name not in _STATE_ENTRIES)
    if unexpected:
        raise _fail(
            f"--fresh refuses to delete {state_dir}: it holds {unexpected}, which a deployment never writes"
        )
    shutil.rmtree(state_dir)


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds bearer tokens)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


@app.command("demo")
def demo_command(
    state_dir: StateDir = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Delete the demo state directory, start over.")
    ] = False,
    citizens: Annotated[int, typer.Option(min=100, help="Rows of civil-affairs/citizens.")] = 200_000,
    visits: Annotated[int, typer.Option(min=100, help="Rows of health-bureau/visits.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = demo_data.DEFAULT_SEED,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on (0: any free port).")] = 8000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep serving after the walkthrough.")
    ] = True,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bars on long steps.")
    ] = True,
) -> None:
    """Set up a demo deployment with generated data, narrate a walkthrough, keep serving."""
    settings = _settings(state_dir)
    if fresh:
        _reset_state_dir(settings.state_dir)
    result = init_deployment(settings)
    tokens_file = settings.state_dir / DEMO_TOKENS_FILE
    if not result.created and not tokens_file.exists():
        raise _fail(
            f"{settings.state_dir} holds a deployment that was not set up by the demo; "
            "use --state-dir for another directory or --fresh to start over"
        )
    server = _BackgroundServer(settings, host=host, port=port)
    server.start()
    try:
        if result.created:
            if result.admin_token is None:
                raise _fail("the new deployment gave no admin token")
            with SandboxClient(server.url, result.admin_token, timeout=600.0) as admin:
                cast = demo.provision(
                    admin,
                    admin_token=result.admin_token,
                    citizens_n=citizens,
                    visits_n=visits,
                    seed=seed,
                    today=date.today(),
                    say=typer.echo,
                    progress=progress,
                )
            _write_private(tokens_file, cast.to_json())
        else:
            typer.echo(f"Reusing the demo deployment in {settings.state_dir} (--fresh starts over).")
            cast = demo.DemoCast.from_json(tokens_file.read_text(encoding="utf-8"), base_url=server.url)
        demo.print_tokens(cast, say=typer.echo)
        demo.run_walkthrough(cast, say=typer.echo, progress=progress)
    except ClientError as failed:
        server.stop()
        raise _fail(f"the demo stopped: {failed.status} {failed.code}: {failed.describe()}") from None
    except BaseException:
        server.stop()
        raise
    if not serve_after:
        server.stop()
        return
    typer.echo("")
    typer.echo(f"Serving at {server.url}: OpenAPI docs at {server.url}/docs. Ctrl-C stops it.")
    typer.echo(f"Tokens are kept (owner-readable only) in {tokens_file}. Try, as operator alice:")
    typer.echo(f"  export SANDBOX_URL={server.url} SANDBOX_TOKEN={cast.tokens['alice']}")
    typer.echo("  sandbox scope list")
    typer.echo(f'  sandbox job submit --scope {demo_data.DEMO_SCOPE_NAME} "{_ONE_LINE_EXAMPLE}"')
    typer.echo("  or open notebooks/operator_walkthrough.ipynb with the same two variables set.")
    server.wait()


# The auditor's commands (receipt and bundle verification, replay, keys, shredding) and the Ray
# cluster helpers live in their own modules; mounted last so they replace the basic `audit verify`.
register_auditor_commands(app)
app.add_typer(cluster_app, name="cluster")


def main() -> None:
    """Entry point of the ``sandbox`` console script."""
    app()


if __name__ == "__main__":
    main()
