"""Who is who, through the gateway: ``whoami``, ``domain``, ``principal`` and ``token`` (admins, and
domain administrators for their own domain's stewards and operators).

Every token has an id (a prefix of its hash: never the secret) and an expiry. ``token list`` shows them,
``token revoke NAME --id ID`` revokes one, ``token revoke NAME`` every one. ``principal disable`` locks a
principal out without touching its tokens (``principal enable`` lets it back in). ``token create`` (from
``deployment``) works without a gateway.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from sandbox_api.cli.common import DEFAULT_URL, Token, Url, fail, note, remote
from sandbox_api.cli.deployment import token_create
from sandbox_api.cli.output import AsCsv, AsJson, OutFile, Shown, emit
from sandbox_api.roles import Role

domain_app = typer.Typer(
    help="Domains: each with its own key-encryption key (admins create them).", no_args_is_help=True
)
principal_app = typer.Typer(help="Principals: one role each (admins).", no_args_is_help=True)
token_app = typer.Typer(
    help="Bearer tokens: `create` works on the state directory; `issue`, `list`, `revoke` ask the gateway.",
    no_args_is_help=True,
)
token_app.command("create")(token_create)

Name = Annotated[str, typer.Argument(help="The principal's name.")]


def whoami(
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Who the token belongs to: name, role, domain, groups."""
    with remote(url, token) as client:
        who = client.whoami()
    emit(Shown.fields(who.model_dump(mode="json")), as_json=as_json, as_csv=as_csv, out=out)


@domain_app.command("list")
def domain_list(
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Domains and the id of each one's key-encryption key."""
    with remote(url, token) as client:
        domains = client.list_domains()
    shown = Shown(
        columns=("domain", "description", "key"),
        rows=[(d.name, d.description, d.kek_id) for d in domains],
        document=[d.model_dump(mode="json") for d in domains],
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@domain_app.command("create")
def domain_create(
    name: Annotated[str, typer.Argument(help="The domain's name, e.g. health-bureau.")],
    description: Annotated[str, typer.Option(help="What the domain holds.")] = "",
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Create a domain with its own key-encryption key (admins)."""
    with remote(url, token) as client:
        created = client.create_domain(name, description=description)
    emit(Shown.fields(created.model_dump(mode="json")), as_json=as_json)
    note(f"next: give it a steward: sandbox principal create NAME --role steward --domain {name}")


@domain_app.command("rotate-key")
def domain_rotate_key(
    name: Annotated[str, typer.Argument(help="The domain.")],
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """A new key-encryption key for the domain; every data key is re-wrapped, the data is untouched."""
    with remote(url, token) as client:
        rotated = client.rotate_domain_key(name)
    emit(Shown.fields(rotated.model_dump(mode="json")), as_json=as_json)


@principal_app.command("list")
def principal_list(
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Every principal with its role, domain, groups and whether it is disabled (admins; a domain
    administrator sees their domain's stewards and operators)."""
    with remote(url, token) as client:
        principals = client.list_principals()
    shown = Shown(
        columns=("name", "role", "domain", "groups", "disabled"),
        rows=[(p.name, p.role.value, p.domain, p.groups, p.disabled) for p in principals],
        document=[p.model_dump(mode="json") for p in principals],
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@principal_app.command("create")
def principal_create(
    name: Name,
    role: Annotated[Role, typer.Option(help="The principal's role.")],
    domain: Annotated[
        str | None,
        typer.Option(help="The domain: stewards and domain administrators need one; operators may have one."),
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="A group of the principal (repeatable).")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Create a principal; its first token is printed once (admins)."""
    with remote(url, token) as client:
        created = client.create_principal(name, role.value, domain=domain, groups=tuple(group or ()))
    if as_json:
        emit(Shown.fields({}, document=created.model_dump(mode="json")), as_json=True)
        return
    typer.echo(created.token)
    note(
        f"created {role.value} {name!r}; the token above (id {created.token_id}, expires "
        f"{_when(created.expires_at)}) is shown once: hand it over privately"
    )


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat(timespec="seconds")


@principal_app.command("disable")
def principal_disable(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Lock a principal out: none of its tokens work, its queued jobs are cancelled and running ones
    stopped (`principal enable` lets it back in)."""
    if not yes:
        typer.confirm(f"disable {name} now (its queued jobs are cancelled)?", abort=True)
    with remote(url, token) as client:
        status = client.disable_principal(name)
    typer.echo(
        f"{name} is disabled: {status.jobs_cancelled} queued job(s) cancelled, "
        f"{status.jobs_stopping} running job(s) stopping"
    )
    note(f"to let {name} back in: sandbox principal enable {name}")


@principal_app.command("enable")
def principal_enable(name: Name, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Let a disabled principal back in: its tokens that are neither revoked nor expired work again."""
    with remote(url, token) as client:
        client.enable_principal(name)
    typer.echo(f"{name} is enabled")


@token_app.command("issue")
def token_issue(
    name: Name,
    label: Annotated[str, typer.Option("--name", help="A label for the token, e.g. its machine.")] = "",
    days: Annotated[
        int | None, typer.Option(help="Lifetime in days (default: the deployment's token_ttl_days).")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """A new token for an existing principal, printed once, with its id and expiry."""
    with remote(url, token) as client:
        created = client.create_token(name, token_name=label, expires_in_days=days)
    typer.echo(created.token)
    note(f"token {created.token_id} of {name} expires {_when(created.expires_at)}; it is shown once")


@token_app.command("list")
def token_list(
    name: Name,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """A principal's tokens: id, name, created, expires, last used, revoked (never the secret)."""
    with remote(url, token) as client:
        tokens = client.list_tokens(name)
    shown = Shown(
        columns=("id", "name", "created", "expires", "last used", "revoked"),
        rows=[
            (
                t.id,
                t.name,
                _when(t.created_at),
                _when(t.expires_at),
                _when(t.last_used_at),
                _when(t.revoked_at),
            )
            for t in tokens
        ],
        document=[t.model_dump(mode="json") for t in tokens],
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@token_app.command("revoke")
def token_revoke(
    name: Name,
    token_id: Annotated[
        str | None, typer.Option("--id", help="Revoke only this token (see `token list`).")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Revoke one token of a principal (`--id`), or every one."""
    with remote(url, token) as client:
        if token_id is not None:
            revoked = client.revoke_token(name, token_id)
            typer.echo(f"revoked token {revoked.id} of {name}")
            return
        every = client.revoke_tokens(name)
    if every.revoked == 0:
        raise fail(f"{name} held no live token; nothing was revoked")
    typer.echo(f"revoked {every.revoked} token(s) of {name}")
