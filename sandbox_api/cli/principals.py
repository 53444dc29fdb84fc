"""Who is who, through the gateway: ``whoami``, ``domain``, ``principal`` and ``token`` (admins).

The API keeps no token ids (only hashes), so a token cannot be listed or revoked alone: ``token revoke``
and ``principal disable`` revoke every token of a principal, which is how an admin locks one out; ``token
issue`` gives the principal a new one. ``token create`` (from ``deployment``) works without a gateway.
"""

from __future__ import annotations

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
    help="Bearer tokens: `create` works on the state directory; `issue` and `revoke` ask the gateway.",
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
    """Every principal with its role, domain and groups (admins)."""
    with remote(url, token) as client:
        principals = client.list_principals()
    shown = Shown(
        columns=("name", "role", "domain", "groups"),
        rows=[(p.name, p.role.value, p.domain, p.groups) for p in principals],
        document=[p.model_dump(mode="json") for p in principals],
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@principal_app.command("create")
def principal_create(
    name: Name,
    role: Annotated[Role, typer.Option(help="The principal's role.")],
    domain: Annotated[str | None, typer.Option(help="The steward's domain (stewards only).")] = None,
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
    note(f"created {role.value} {name!r}; the token above is shown once: hand it over privately")


@principal_app.command("disable")
def principal_disable(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Lock a principal out: every token it holds is revoked (`token issue` lets it back in)."""
    if not yes:
        typer.confirm(f"revoke every token of {name} now?", abort=True)
    with remote(url, token) as client:
        revoked = client.revoke_tokens(name)
    typer.echo(f"{name} is disabled: {revoked.revoked} token(s) revoked")
    note(f"to let {name} back in: sandbox token issue {name}")


@token_app.command("issue")
def token_issue(name: Name, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """A new token for an existing principal, printed once (admins)."""
    with remote(url, token) as client:
        created = client.create_token(name)
    typer.echo(created.token)


@token_app.command("revoke")
def token_revoke(name: Name, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Revoke every token of a principal (the API keeps no ids of single tokens to revoke one alone)."""
    with remote(url, token) as client:
        revoked = client.revoke_tokens(name)
    if revoked.revoked == 0:
        raise fail(f"{name} held no live token; nothing was revoked")
    typer.echo(f"revoked {revoked.revoked} token(s) of {name}")
