"""The witness's commands (docs/auditing.md, "Witnessed checkpoints").

- ``sandbox witness keygen --name NAME --key FILE [--sm2]``: a key pair that never reaches the gateway
- ``sandbox witness register NAME --public-key HEX [--domain D]`` (admin)
- ``sandbox witness list`` (auditors, admins): the witnesses' public keys, the file
  ``sandbox audit verify --witness-keys`` reads
- ``sandbox witness sign --key FILE [--state FILE]`` (an auditor's token): verify the chain on a fresh
  export, check that each pending checkpoint extends the head co-signed last time, co-sign and post
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sandbox_api.cli.common import DEFAULT_URL, Token, Url, fail, remote

witness_app = typer.Typer(help="Audit witnesses: co-sign the gateway's checkpoints.", no_args_is_help=True)

KeyFile = Annotated[Path, typer.Option("--key", dir_okay=False, help="The witness's key file.")]


@witness_app.command("keygen")
def witness_keygen(
    name: Annotated[str, typer.Option("--name", help="The witness's name, as registered.")],
    key: KeyFile,
    sm2: Annotated[bool, typer.Option("--sm2", help="An SM2 key (GB/T 32918) instead of Ed25519.")] = False,
) -> None:
    """Make a witness key pair (offline); prints the public key to register."""
    from crypto.signing import ED25519, SM2
    from sandbox_api.client.witness import new_key

    try:
        made = new_key(key, name=name, algorithm=SM2 if sm2 else ED25519)
    except FileExistsError:
        raise fail(f"{key} exists: a witness key is never overwritten") from None
    typer.echo(made.pair.public.hex())


@witness_app.command("register")
def witness_register(
    name: Annotated[str, typer.Argument(help="The witness's name.")],
    public_key: Annotated[str, typer.Option("--public-key", help="Its public key in hex (witness keygen).")],
    domain: Annotated[str | None, typer.Option(help="The domain whose witness it is.")] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Register a witness (admins); audited."""
    with remote(url, token) as client:
        made = client.register_witness(name=name, domain=domain, public_key=public_key)
    typer.echo(f"registered witness {made['name']} (key {made['kid']}, {made['algorithm']})")


@witness_app.command("list")
def witness_list(
    out: Annotated[Path | None, typer.Option("--out", help="Write the keys file here.")] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """The registered witnesses and their public keys (keep a copy for `audit verify --witness-keys`)."""
    with remote(url, token) as client:
        found = client.witnesses()
    text = json.dumps({"witnesses": found}, indent=2, sort_keys=True)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}")


@witness_app.command("sign")
def witness_sign(
    key: KeyFile,
    state: Annotated[
        Path | None,
        typer.Option(help="Where this witness keeps the head it co-signed last (default: KEY.state)."),
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Co-sign every checkpoint not yet witnessed, each only if the chain still holds the head signed
    before; exit 1 (signing nothing more) at the first that does not."""
    import json as _json

    from crypto.audit import AuditEntry, Checkpoint
    from crypto.errors import CryptoError
    from sandbox_api.client.witness import cosign, read_key, read_state, write_state

    state_path = state if state is not None else key.with_name(key.name + ".state")
    try:
        witness = read_key(key)
        previous = read_state(state_path)
    except CryptoError as broken:
        raise fail(broken.detail) from None
    with remote(url, token) as client:
        page = client.checkpoints(unwitnessed_by=witness.name)
        pending = [Checkpoint.from_json(_json.dumps(c["checkpoint"])) for c in page["checkpoints"]]
        if not pending:
            typer.echo("nothing to co-sign")
            return
        entries = [AuditEntry.from_json(line) for line in client.audit_export().splitlines() if line.strip()]
        try:
            signatures = cosign(witness, entries, pending, previous)
        except CryptoError as refused:
            raise fail(f"REFUSED: {refused.detail}") from None
        for signature in signatures:
            client.cosign(signature.seq, signature.to_dict())
            write_state(state_path, (signature.seq, signature.head_hash))
    last = signatures[-1]
    typer.echo(f"co-signed {len(signatures)} checkpoints as {witness.name}; last seq {last.seq}")
