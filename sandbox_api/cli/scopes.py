"""``sandbox scope``: grants from policy officers to operators, with four eyes on every version.

``lint`` checks a scope file on this machine with the gateway's own parser, so a typo is found before
anyone is asked to approve it; ``diff`` shows what changed between two versions before approving.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from sandbox_api.cli.common import DEFAULT_URL, Token, Url, fail, note, remote, scope_version_id
from sandbox_api.cli.output import AsCsv, AsJson, OutFile, Shown, emit

if TYPE_CHECKING:
    from sandbox_api.schemas import ScopeOut, ScopeVersionOut

scope_app = typer.Typer(help="Scopes: grants from policy officers to operators.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The scope's name.")]
Version = Annotated[str, typer.Argument(help="The version id, or a unique prefix of it.")]
Document = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Scope file (.yaml or .json).")]
RequiredReason = Annotated[str, typer.Option(help="Why (recorded in the audit log; required).")]


def _format(document: Path) -> Literal["yaml", "json"]:
    return "json" if document.suffix.lower() == ".json" else "yaml"


def _version_row(version: ScopeVersionOut) -> tuple[Any, ...]:
    approvals = f"{len(version.approvals)}/{version.required_approvals}"
    return (
        version.version_id[:12],
        version.state,
        "yes" if version.active else (version.inactive_reason or "no"),
        version.author,
        approvals,
        version.created_at,
    )


_VERSION_COLUMNS = ("version", "state", "active", "author", "approvals", "created")


@scope_app.command("create")
def scope_create(
    document: Document, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False
) -> None:
    """Propose a scope (policy officer); a second officer must approve it."""
    with remote(url, token) as client:
        created = client.create_scope(document.read_text(encoding="utf-8"), fmt=_format(document))
    version = created.version
    shown = Shown(
        columns=_VERSION_COLUMNS,
        rows=[_version_row(version)],
        document=created.model_dump(mode="json", by_alias=True),
        title=f"scope {version.name}" + ("" if created.created else " (this exact version already existed)"),
    )
    emit(shown, as_json=as_json)
    if version.state == "pending":
        note(
            f"next: another policy officer approves it: sandbox scope approve {version.name} "
            f"{version.version_id[:12]} --reason '…'"
        )


def _decided(version: ScopeVersionOut, verb: str, *, as_json: bool) -> None:
    if as_json:
        emit(Shown.fields({}, document=version.model_dump(mode="json")), as_json=True)
        return
    typer.echo(
        f"{verb} {version.name} version {version.version_id[:12]}: now {version.state}"
        f" ({len(version.approvals)}/{version.required_approvals} approvals"
        + (", active)" if version.active else ")")
    )


@scope_app.command("approve")
def scope_approve(
    name: Name,
    version: Version,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Approve a pending scope version (a policy officer other than its author)."""
    with remote(url, token) as client:
        full = scope_version_id(client, name, version)
        before = client.get_scope(name)
        already = next((v for v in before.versions if v.version_id == full), None)
        decided = client.approve_scope(name, full, reason=reason)
    if already is not None and already.state != "pending":
        note(f"version {full[:12]} was already {already.state}: nothing changed")
    _decided(decided, "approved", as_json=as_json)
    if decided.active:
        note(f"operators granted {name} may now submit jobs: sandbox job submit --scope {name} '…'")


@scope_app.command("reject")
def scope_reject(
    name: Name,
    version: Version,
    reason: RequiredReason,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Reject a pending scope version, with a reason its author can act on."""
    if not reason.strip():
        raise fail("give --reason: the author needs to know what to change")
    with remote(url, token) as client:
        decided = client.reject_scope(name, scope_version_id(client, name, version), reason=reason)
    _decided(decided, "rejected", as_json=as_json)


@scope_app.command("revoke")
def scope_revoke(
    name: Name,
    version: Version,
    reason: RequiredReason,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Revoke a scope version: no new job may use it (jobs already released stay verifiable)."""
    if not reason.strip():
        raise fail("give --reason: revoking a grant is recorded with why")
    with remote(url, token) as client:
        decided = client.revoke_scope(name, scope_version_id(client, name, version), reason=reason)
    _decided(decided, "revoked", as_json=as_json)


@scope_app.command("list")
def scope_list(
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Scopes you may see (operators: only those granted to you)."""
    with remote(url, token) as client:
        scopes = client.list_scopes()
    rows = []
    for scope in scopes:
        pending = sum(1 for v in scope.versions if v.state == "pending")
        rows.append((scope.name, (scope.active_version or "")[:12], len(scope.versions), pending))
    shown = Shown(
        columns=("scope", "active version", "versions", "pending"),
        rows=rows,
        document=[s.model_dump(mode="json", by_alias=True) for s in scopes],
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@scope_app.command("show")
def scope_show(
    name: Name,
    version: Annotated[
        str | None, typer.Argument(help="Print this version's document (id or unique prefix).")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """A scope's versions and their states; with VERSION, that version's document (YAML)."""
    with remote(url, token) as client:
        scope = client.get_scope(name)
        full = None if version is None else scope_version_id(client, name, version)
    if full is not None:
        chosen = next(v for v in scope.versions if v.version_id == full)
        if as_json:
            emit(Shown.fields({}, document=chosen.model_dump(mode="json")), as_json=True, out=out)
        else:
            typer.echo(_as_yaml(chosen.document), nl=False)
        return
    shown = Shown(
        columns=_VERSION_COLUMNS,
        rows=[_version_row(v) for v in scope.versions],
        document=scope.model_dump(mode="json", by_alias=True),
        title=f"scope {scope.name}",
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@scope_app.command("diff")
def scope_diff(
    name: Name,
    old: Annotated[str | None, typer.Argument(help="The older version (default: the active one).")] = None,
    new: Annotated[str | None, typer.Argument(help="The newer version (default: the newest).")] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """What changed between two versions of a scope, as a unified diff of their documents."""
    with remote(url, token) as client:
        scope = client.get_scope(name)
        old_id = _pick(client, scope, old, default=scope.active_version, what="the active version")
        newest = max(scope.versions, key=lambda v: v.created_at).version_id if scope.versions else None
        new_id = _pick(client, scope, new, default=newest, what="a newest version")
    by_id = {v.version_id: v for v in scope.versions}
    diff = difflib.unified_diff(
        _as_yaml(by_id[old_id].document).splitlines(keepends=True),
        _as_yaml(by_id[new_id].document).splitlines(keepends=True),
        fromfile=f"{name}@{old_id[:12]}",
        tofile=f"{name}@{new_id[:12]}",
    )
    text = "".join(diff)
    typer.echo(text if text else f"versions {old_id[:12]} and {new_id[:12]} hold the same document", nl=False)
    if not text:
        typer.echo("")


def _pick(client: Any, scope: ScopeOut, given: str | None, *, default: str | None, what: str) -> str:
    if given is not None:
        return scope_version_id(client, scope.name, given)
    if default is None:
        raise fail(f"scope {scope.name} has no {what}: name both versions")
    return default


@scope_app.command("lint")
def scope_lint(document: Document) -> None:
    """Check a scope file offline with the gateway's parser: every problem with its field path."""
    from policies.errors import ScopeInvalid
    from policies.model import load_scope

    try:
        scope = load_scope(document.read_text(encoding="utf-8"), fmt=_format(document))
    except ScopeInvalid as invalid:
        lines = [f"INVALID: {document.name}: {invalid.detail}"]
        lines += [f"  - {finding.message}" for finding in invalid.findings]
        raise fail("\n".join(lines)) from None
    typer.echo(f"OK: scope {scope.name} ({', '.join(scope.datasets)}) parses; submit it with scope create")


def _as_yaml(document: dict[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False, allow_unicode=True))
