"""Commands on the state directory, no gateway needed: ``init``, ``serve`` and ``token create``.

The gateway, the store and the keyring are imported inside the commands: ``sandbox --help`` and the
commands that only talk to a gateway never load them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from sandbox_api.cli.common import fail
from sandbox_api.roles import Role

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sandbox_api.clock import Clock
    from sandbox_api.server.services.principals import PrincipalService
    from sandbox_api.server.settings import Settings

_CLI_ACTOR: Final = "local-cli"
# Seconds a stopping gateway waits for open requests: a long-poll may otherwise hold it for 30 s.
SHUTDOWN_GRACE_S: Final = 5

StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="State directory (default: SANDBOX_STATE_DIR or ./.sandbox-state)."),
]


def settings_for(state_dir: Path | None, **overrides: Any) -> Settings:
    """Settings from the environment, with the command line's choices on top."""
    from sandbox_api.server.settings import Settings

    if state_dir is not None:
        overrides["state_dir"] = state_dir
    return Settings(**overrides)


def create_gateway(settings: Settings) -> FastAPI:
    from sandbox_api.server.app import create_app

    return create_app(settings)


def init(
    state_dir: StateDir = None,
    admin_name: Annotated[str, typer.Option(help="Name of the first admin.")] = "admin",
    crypto_profile: Annotated[
        str | None,
        typer.Option(
            help="Algorithms: `international` or `gm` (SM2/SM3/SM4); default SANDBOX_CRYPTO_PROFILE. "
            "Fixed once initialised: serve the deployment with the same SANDBOX_CRYPTO_PROFILE."
        ),
    ] = None,
) -> None:
    """Initialise a deployment: state directory, metadata database, keyring, first admin token."""
    from crypto.errors import CryptoError
    from sandbox_api.errors import ServiceError
    from sandbox_api.server.bootstrap import init_deployment

    if crypto_profile not in (None, "international", "gm"):
        raise fail(f"unknown crypto profile {crypto_profile!r}: choose international or gm")
    chosen = {} if crypto_profile is None else {"crypto_profile": crypto_profile}
    settings = settings_for(state_dir, **chosen)
    try:
        result = init_deployment(settings, admin_name=admin_name)
    except (ServiceError, CryptoError) as failed:
        raise fail(f"{failed.code}: {failed.detail}") from None
    if not result.created:
        typer.echo(f"Deployment in {settings.state_dir} is already initialised; nothing changed.")
        return
    typer.echo(f"Initialised a deployment in {settings.state_dir}.")
    typer.echo(f"Admin token for {admin_name!r} (shown once, keep it secret):")
    typer.echo(result.admin_token or "")


def serve(
    state_dir: StateDir = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: SANDBOX_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: SANDBOX_PORT).")] = None,
) -> None:
    """Run the gateway (OpenAPI documentation at /docs)."""
    import uvicorn

    from sandbox_api.server.observability.logs import logging_config
    from sandbox_api.server.settings import unknown_environment

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = settings_for(state_dir, **overrides)
    for name in unknown_environment(os.environ):
        typer.secho(
            f"warning: {name} is not a setting and is ignored (see docs/settings.md for the names)",
            err=True,
            fg=typer.colors.YELLOW,
        )
    from sandbox_api.errors import ServiceError
    from sandbox_api.server import tls

    try:
        tls_options = tls.server_options(settings)
    except ServiceError as failed:
        raise fail(f"{failed.code}: {failed.detail}") from None
    uvicorn.run(
        create_gateway(settings),
        host=settings.host,
        port=settings.port,
        # JSON lines with request ids (settings log_format, log_level): the gateway's and uvicorn's own.
        log_config=logging_config(settings.log_format, settings.log_level),
        log_level=settings.log_level,
        access_log=False,  # the gateway writes one line per request itself, with its id
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        **tls_options,
    )


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
    from crypto.errors import CryptoError
    from sandbox_api.errors import ServiceError

    settings = settings_for(state_dir)
    try:
        token = issue_token_offline(settings, name=name, role=role, domain=domain, groups=tuple(group or ()))
    except (ServiceError, CryptoError) as failed:
        raise fail(f"{failed.code}: {failed.detail}") from None
    typer.echo(token)


@contextmanager
def open_principal_service(settings: Settings, *, clock: Clock | None = None) -> Iterator[PrincipalService]:
    """The principal service straight on the state directory, for work without a running gateway."""
    from sandbox_api.clock import SystemClock
    from sandbox_api.errors import DeploymentNotInitialised
    from sandbox_api.server.bootstrap import deployment_initialised, open_audit_log, open_keys
    from sandbox_api.server.services.principals import PrincipalService
    from sandbox_api.server.store import migrate
    from sandbox_api.server.store.db import open_database

    clock = clock or SystemClock()
    if not deployment_initialised(settings):
        raise DeploymentNotInitialised(
            f"no deployment in {settings.state_dir}; run `sandbox init` first (or pass --state-dir)"
        )
    keys = open_keys(settings, clock=clock)
    db = open_database(settings.resolved_database_url)
    try:
        migrate.upgrade(db)
        audit = open_audit_log(settings, db=db, keys=keys, clock=clock)
        yield PrincipalService(
            db=db,
            audit=audit,
            clock=clock,
            keys=keys,
            token_ttl=timedelta(days=settings.token_ttl_days),
            token_max_ttl=timedelta(days=settings.token_max_ttl_days),
        )
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
    from sandbox_api.errors import Conflict
    from sandbox_api.server.store.models import PrincipalRow

    with open_principal_service(settings, clock=clock) as principals, principals.db.write() as session:
        existing = session.get(PrincipalRow, name)
        if existing is None:
            _, token = principals.create_principal(
                session, actor=_CLI_ACTOR, name=name, role=role, domain=domain, groups=groups
            )
            return token.secret
        if existing.role != role.value or (domain is not None and existing.domain != domain):
            where = f" in domain {existing.domain}" if existing.domain else ""
            raise Conflict(
                f"principal {name!r} exists with role {existing.role}{where}; "
                "a new token keeps the principal's role: use that role or another name"
            )
        return principals.issue_token(session, actor=_CLI_ACTOR, name=name).secret
