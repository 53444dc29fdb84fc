"""The auditor's commands: verify receipts and audit bundles offline, read the log, export keys, replay.

``register(app)`` mounts them on the ``sandbox`` command line:

- ``sandbox receipt verify RESULT [RECEIPT] --public-key KEYS`` (offline; a result saved with
  ``sandbox job result --out`` carries its receipt)
- ``sandbox audit verify BUNDLE [--expected-head HASH] [--public-key KEYS]`` (offline; also reads a
  JSON Lines export)
- ``sandbox audit events / head / export / bundle`` (auditors), ``sandbox keys export [--out FILE]`` (no
  token), ``sandbox keys rotate`` (admin)
- ``sandbox replay JOB_ID`` (auditor)

Offline commands exit 0 when everything verifies and 1 with the reason (what and where) when not. The
verifier is imported inside the commands, so the rest of the command line starts without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sandbox_api.cli.common import DEFAULT_URL, Token, Url, fail, job_id, refusal, remote
from sandbox_api.cli.output import AsCsv, AsJson, OutFile, Shown, emit

PublicKey = Annotated[
    str | None,
    typer.Option(
        "--public-key",
        help="Trusted keys: a file from `sandbox keys export`, a key record, or a hex/base64 public key.",
    ),
]
Out = Annotated[Path | None, typer.Option("--out", help="Write to this file instead of standard output.")]

audit_app = typer.Typer(help="The audit log: read it, export it, verify it offline.", no_args_is_help=True)
receipt_app = typer.Typer(help="Signed receipts of released results.", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys: export the public keys, rotate.", no_args_is_help=True)


def _write(value: Any, out: Path | None) -> None:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}")


# --- offline verification ----------------------------------------------------------------------------


@receipt_app.command("verify")
def receipt_verify(
    result: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="The result as served (JSON: `sandbox job result --out`)."
        ),
    ],
    receipt: Annotated[
        Path | None,
        typer.Argument(
            exists=True, dir_okay=False, help="The receipt (JSON); default: the one the result carries."
        ),
    ] = None,
    public_key: PublicKey = None,
) -> None:
    """Verify a receipt's signature and key validity, and that RESULT is the result it signed."""
    from crypto.errors import CryptoError
    from sandbox_api.client.verify import load_keys, read_json, verify_receipt

    if public_key is None:
        raise fail("give --public-key: the keys you trust (sandbox keys export), not the gateway's word")
    try:
        keys = load_keys(public_key)
        body = read_json(result, what="result")
        signed = body if receipt is None else read_json(receipt, what="receipt")
        if not isinstance(body, dict) or not isinstance(signed, dict):
            raise fail("INVALID: the result and the receipt must be JSON objects")
        if "signature" not in signed and isinstance(signed.get("receipt"), dict):
            signed = signed["receipt"]  # a result as served carries its receipt
        report = verify_receipt(signed, keys, result=body)
    except CryptoError as broken:
        raise fail(f"INVALID: {broken.detail}") from None
    typer.echo(
        f"OK: receipt for job {report.job_id} signed by key {report.kid} at {report.signed_at} "
        f"({report.profile} profile); the result matches (canonical hash {report.result_hash})"
    )


@audit_app.command("verify")
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
    witness_keys: Annotated[
        Path | None,
        typer.Option(
            "--witness-keys",
            exists=True,
            dir_okay=False,
            help="The witnesses' public keys you trust (`sandbox witness list --out`), optionally with "
            "`required`; default: those the bundle carries.",
        ),
    ] = None,
    require_witness: Annotated[
        list[str] | None,
        typer.Option(
            "--require-witness", help="A witness name, domain:NAME or domain:* (repeat); overrides the file."
        ),
    ] = None,
) -> None:
    """Verify the chain, every checkpoint signature, every witness co-signature and, against a kept
    head, truncation; exit 1 when a checkpoint lacks a required witness."""
    from crypto.errors import CryptoError
    from sandbox_api.client.verify import load_keys, load_witnesses, verify_bundle, verify_export_lines

    try:
        text = bundle.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise fail(f"BROKEN: {bundle.name} is not UTF-8 text") from None
    try:
        document = _json_object(text)
        if document is None:
            report = verify_export_lines(text.splitlines(), expected_head=expected_head)
        else:
            trusted = None if public_key is None else load_keys(public_key)
            witnesses, required = (None, None) if witness_keys is None else load_witnesses(witness_keys)
            report = verify_bundle(
                document,
                expected_head=expected_head,
                trusted_keys=trusted,
                witness_keys=witnesses,
                required_witnesses=require_witness or required,
            )
    except CryptoError as broken:
        raise fail(f"BROKEN: {broken.detail}") from None
    line = f"OK: {report.count} events, last seq {report.last_seq}, head {report.head_hash}"
    if document is not None:
        keys = ", ".join(report.keys) or "none"
        source = "given with --public-key" if public_key is not None else "carried by the bundle"
        line += f"; {report.checkpoints} signed checkpoints verified (keys {keys}, {source})"
        line += f"; {report.witness_signatures} witness co-signatures verified"
    typer.echo(line + ("" if expected_head is None else "; the expected head is in the chain"))
    if expected_head is None:
        typer.secho(
            "warning: not verified: that no events were cut off the end (head included). Keep the head "
            "elsewhere (`sandbox audit head --out head.json`, on another machine) and pass its hash "
            "with --expected-head",
            err=True,
            fg=typer.colors.YELLOW,
        )
    if document is not None and report.unwitnessed:
        for seq, lacking in report.unwitnessed:
            typer.echo(f"UNWITNESSED: checkpoint at seq {seq} lacks {', '.join(lacking)}")
        raise fail(f"{len(report.unwitnessed)} checkpoints lack a required witness")


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


@audit_app.command("bundle")
def audit_bundle(out: Out = None, url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Download the audit bundle (events, checkpoints, keys); the export itself is audited."""
    with remote(url, token) as client:
        _write(client.audit_bundle(), out)


@keys_app.command("export")
def keys_export(out: Out = None, url: Url = DEFAULT_URL) -> None:
    """Save the published signing keys (no token needed) to pass as --public-key."""
    from sandbox_api.client.api_client import ClientError
    from sandbox_api.client.auditor import fetch_signing_keys

    try:
        keys = fetch_signing_keys(url)
    except ClientError as refused:
        raise fail(refusal(refused)) from None
    _write(keys, out)


@keys_app.command("rotate")
def keys_rotate(url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Admins: start signing with a new key; the old one stays published for older receipts."""
    with remote(url, token) as client:
        _write(client.rotate_signing_key().model_dump(mode="json"), None)


# What an auditor does about each kind of mismatch (docs/auditing.md says more).
_NEXT_STEP = {
    "release-differs": "treat it as an incident: keep the receipt, the result and an audit bundle, and "
    "find out who changed what (tampering) or why the pipeline is not deterministic",
    "context-unavailable": "this says nothing about the release: report it to the deployment's operators "
    "with the missing part named above; a record deleted from the store is an incident of its own",
}


def replay(
    job: Annotated[str, typer.Argument(help="The released job to replay (id or unique prefix).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Auditors: run a released job again in the context it ran under; exit 0 on a match, 1 otherwise.

    A mismatch says its kind: ``release-differs`` (the evidence and the replay disagree: an incident)
    or ``context-unavailable`` (replay could not rebuild the job's context: a replay defect).
    """
    with remote(url, token) as client:
        report = client.replay(job_id(client, job))
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


# --- reading the log ----------------------------------------------------------------------------------


@audit_app.command("events")
def audit_events(
    event: Annotated[str | None, typer.Option(help="This event, or a prefix ending in '.' (job.).")] = None,
    actor: Annotated[str | None, typer.Option(help="Only events by this principal.")] = None,
    since_seq: Annotated[int | None, typer.Option(help="Only events after this sequence number.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, oldest first.")] = 100,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Audit events, oldest first (auditors); the last line says how to read the next page."""
    with remote(url, token) as client:
        page = client.audit_events(event=event, actor=actor, since_seq=since_seq, limit=limit)
    notes = [] if page.next_since_seq is None else [f"more: --since-seq {page.next_since_seq}"]
    shown = Shown(
        columns=("seq", "at", "event", "actor", "details"),
        rows=[(e.seq, e.at, e.event, e.actor, e.details) for e in page.events],
        document=page.model_dump(mode="json"),
        notes=notes,
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


HEAD_LINE_FORMAT = "data-sandbox/audit-head/v1"


@audit_app.command("head")
def audit_head(
    url: Url = DEFAULT_URL,
    token: Token = "",
    out: Out = None,
    append_to: Annotated[
        Path | None,
        typer.Option(
            "--append-to",
            dir_okay=False,
            help="Append the signed head as one JSON line to this file (an append-only store's inbox).",
        ),
    ] = None,
) -> None:
    """The chain's head, signed now: keep a copy elsewhere to detect a cut-off tail later."""
    with remote(url, token) as client:
        head = client.audit_head()
    if append_to is None:
        _write(head.model_dump(mode="json"), out)
        return
    import os

    # One self-contained line per head: a WORM bucket, a transparency log or syslog can ingest it as is;
    # its hash is what `sandbox audit verify --expected-head` takes.
    line = {
        "format": HEAD_LINE_FORMAT,
        "seq": head.last_seq,
        "hash": head.hash,
        "at": head.at,
        "checkpoint": None if head.checkpoint is None else head.checkpoint.model_dump(mode="json"),
    }
    with append_to.open("a", encoding="utf-8") as store:
        store.write(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n")
        store.flush()
        os.fsync(store.fileno())
    typer.echo(f"appended head seq {head.last_seq} ({head.hash}) to {append_to}")


@audit_app.command("checkpoints")
def audit_checkpoints(
    unwitnessed_by: Annotated[
        str | None, typer.Option(help="Only those this witness has yet to co-sign.")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
    out: Out = None,
) -> None:
    """Signed checkpoints with their witness co-signatures and the required witnesses each lacks."""
    with remote(url, token) as client:
        _write(client.checkpoints(unwitnessed_by=unwitnessed_by), out)


@audit_app.command("export")
def audit_export(url: Url = DEFAULT_URL, token: Token = "", out: Out = None) -> None:
    """The whole chain as JSON Lines (auditors), for `sandbox audit verify`."""
    with remote(url, token) as client:
        text = client.audit_export()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")


# --- mounting ----------------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    """Mount the auditor's commands on ``app`` (the ``sandbox`` command line)."""
    app.add_typer(audit_app, name="audit")
    app.add_typer(receipt_app, name="receipt")
    app.add_typer(keys_app, name="keys")
    app.command("replay")(replay)


def build_app() -> typer.Typer:
    """A stand-alone ``sandbox``-like app with only these commands (for tests and embedding)."""
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    register(app)
    return app
