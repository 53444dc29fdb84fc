"""The auditor's commands: verify receipts and audit bundles offline, export keys and bundles, replay.

``register(app)`` mounts them on the ``sandbox`` command line:

- ``sandbox receipt verify RESULT RECEIPT --public-key KEYS`` (offline)
- ``sandbox audit verify BUNDLE [--expected-head HASH] [--public-key KEYS]`` (offline; also reads a
  JSON Lines export)
- ``sandbox audit bundle --out FILE`` (auditor), ``sandbox keys export [--out FILE]`` (no token),
  ``sandbox keys rotate`` (admin), ``sandbox dataset shred DOMAIN/NAME VERSION`` (steward, admin)
- ``sandbox replay JOB_ID`` (auditor)

Offline commands exit 0 when everything verifies and 1 with the reason (what and where) when not.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from crypto.errors import CryptoError
from sandbox_api.auditor import AuditorClient, fetch_signing_keys
from sandbox_api.client import ClientError
from sandbox_api.verify import (
    load_keys,
    read_json,
    verify_bundle,
    verify_export_lines,
    verify_receipt,
)

DEFAULT_URL: Final = "http://127.0.0.1:8000"

Url = Annotated[str, typer.Option("--url", envvar="SANDBOX_URL", help="Gateway address.")]
Token = Annotated[
    str, typer.Option("--token", envvar="SANDBOX_TOKEN", help="Bearer token.", show_default=False)
]
PublicKey = Annotated[
    str | None,
    typer.Option(
        "--public-key",
        help="Trusted keys: a file from `sandbox keys export`, a key record, or a hex/base64 public key.",
    ),
]
Out = Annotated[Path | None, typer.Option("--out", help="Write to this file instead of standard output.")]


def _fail(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(1)


def _write(value: Any, out: Path | None) -> None:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}")


@contextmanager
def _remote(url: str, token: str) -> Iterator[AuditorClient]:
    try:
        with AuditorClient(url, token, timeout=600.0) as client:
            yield client
    except ClientError as refused:
        raise _fail(f"{refused.status} {refused.code}: {refused.describe()}") from None


# --- offline verification ----------------------------------------------------------------------------


def receipt_verify(
    result: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="The result as served (JSON: columns, rows).")
    ],
    receipt: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The receipt (JSON).")],
    public_key: PublicKey = None,
) -> None:
    """Verify a receipt's signature and key validity, and that RESULT is the result it signed."""
    if public_key is None:
        raise _fail("give --public-key: the keys you trust (sandbox keys export), not the gateway's word")
    try:
        keys = load_keys(public_key)
        body = read_json(result, what="result")
        signed = read_json(receipt, what="receipt")
        if not isinstance(body, dict) or not isinstance(signed, dict):
            raise _fail("INVALID: the result and the receipt must be JSON objects")
        if "signature" not in signed and isinstance(signed.get("receipt"), dict):
            signed = signed["receipt"]  # a result as served carries its receipt
        report = verify_receipt(signed, keys, result=body)
    except CryptoError as broken:
        raise _fail(f"INVALID: {broken.detail}") from None
    typer.echo(
        f"OK: receipt for job {report.job_id} signed by key {report.kid} at {report.signed_at}; "
        f"the result matches (canonical hash {report.result_hash})"
    )


def audit_verify(
    bundle: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="An audit bundle (JSON), or a JSON Lines export of the log."
        ),
    ],
    expected_head: Annotated[
        str | None,
        typer.Option("--expected-head", "--head", help="A head hash kept elsewhere: detects a cut-off tail."),
    ] = None,
    public_key: PublicKey = None,
) -> None:
    """Verify the chain, every checkpoint signature and, against a kept head, truncation."""
    try:
        text = bundle.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _fail(f"BROKEN: {bundle.name} is not UTF-8 text") from None
    try:
        document = _json_object(text)
        if document is None:
            report = verify_export_lines(text.splitlines(), expected_head=expected_head)
        else:
            trusted = None if public_key is None else load_keys(public_key)
            report = verify_bundle(document, expected_head=expected_head, trusted_keys=trusted)
    except CryptoError as broken:
        raise _fail(f"BROKEN: {broken.detail}") from None
    line = f"OK: {report.count} events, last seq {report.last_seq}, head {report.head_hash}"
    if document is not None:
        keys = ", ".join(report.keys) or "none"
        source = "given with --public-key" if public_key is not None else "carried by the bundle"
        line += f"; {report.checkpoints} signed checkpoints verified (keys {keys}, {source})"
    typer.echo(line + ("" if expected_head is None else "; the expected head is in the chain"))


def _json_object(text: str) -> dict[str, Any] | None:
    """The document if ``text`` is one JSON object that is not an audit event line; else None."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict) and "prev_hash" not in value:
        return value
    return None


# --- talking to the gateway ---------------------------------------------------------------------------


def audit_bundle(out: Out = None, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Download the audit bundle (events, checkpoints, keys); the export itself is audited."""
    with _remote(url, token) as client:
        _write(client.audit_bundle(), out)


def keys_export(out: Out = None, url: Url = DEFAULT_URL) -> None:
    """Save the published signing keys (no token needed) to pass as --public-key."""
    try:
        keys = fetch_signing_keys(url)
    except ClientError as refused:
        raise _fail(f"{refused.status} {refused.code}: {refused.describe()}") from None
    _write(keys, out)


def keys_rotate(url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Admins: start signing with a new key; the old one stays published for older receipts."""
    with _remote(url, token) as client:
        _write(client.rotate_signing_key().model_dump(mode="json"), None)


def dataset_shred(
    dataset: Annotated[str, typer.Argument(help="domain/name")],
    version: Annotated[str, typer.Argument(help="The version id to destroy.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Crypto-shred a dataset version: its data key is destroyed and the data can never be read again."""
    if "/" not in dataset:
        raise _fail("give the dataset as domain/name")
    if not yes:
        typer.confirm(f"destroy version {version} of {dataset} for good?", abort=True)
    domain, name = dataset.split("/", 1)
    with _remote(url, token) as client:
        _write(client.shred_version(domain, name, version, reason=reason).model_dump(mode="json"), None)


# What an auditor does about each kind of mismatch (docs/auditing.md says more).
_NEXT_STEP = {
    "release-differs": "treat it as an incident: keep the receipt, the result and an audit bundle, and "
    "find out who changed what (tampering) or why the pipeline is not deterministic",
    "context-unavailable": "this says nothing about the release: report it to the deployment's operators "
    "with the missing part named above; a record deleted from the store is an incident of its own",
}


def replay(
    job_id: Annotated[str, typer.Argument(help="The released job to replay.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Auditors: run a released job again in the context it ran under; exit 0 on a match, 1 otherwise.

    A mismatch says its kind: ``release-differs`` (the evidence and the replay disagree: an incident)
    or ``context-unavailable`` (replay could not rebuild the job's context: a replay defect).
    """
    with _remote(url, token) as client:
        report = client.replay(job_id)
    if as_json:
        _write(report.model_dump(mode="json"), None)
    else:
        kind = report.kind
        outcome = report.outcome.upper() + (f" ({kind})" if kind else "")
        typer.echo(f"{outcome}: {report.message}")
        for mismatch in report.mismatches:
            typer.echo(f"  - [{mismatch.kind}] {mismatch.field}: {mismatch.message}")
        for note in report.notes:
            typer.echo(f"  note: {note}")
        if kind in _NEXT_STEP:
            typer.echo(f"  next: {_NEXT_STEP[kind]}")
    if not report.match:
        raise typer.Exit(1)


# --- mounting ----------------------------------------------------------------------------------------


def _group(app: typer.Typer, name: str, help_text: str) -> typer.Typer:
    """The sub-command group ``name`` of ``app``, created if it does not exist yet."""
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


def _put(group: typer.Typer, name: str, command: Callable[..., None]) -> None:
    """Register ``command`` as ``name``, replacing a command of that name (``audit verify`` grows up)."""
    group.registered_commands = [c for c in group.registered_commands if c.name != name]
    group.command(name)(command)


def register(app: typer.Typer) -> None:
    """Mount the auditor's commands on ``app`` (the ``sandbox`` command line)."""
    _put(_group(app, "receipt", "Signed receipts of released results."), "verify", receipt_verify)
    audit = _group(app, "audit", "The audit log.")
    _put(audit, "verify", audit_verify)
    _put(audit, "bundle", audit_bundle)
    keys = _group(app, "keys", "Signing keys: export the public keys, rotate.")
    _put(keys, "export", keys_export)
    _put(keys, "rotate", keys_rotate)
    _put(_group(app, "dataset", "Datasets in the catalog."), "shred", dataset_shred)
    app.registered_commands = [c for c in app.registered_commands if c.name != "replay"]
    app.command("replay")(replay)


def build_app() -> typer.Typer:
    """A stand-alone ``sandbox``-like app with only these commands (for tests and embedding)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    register(app)
    return app
