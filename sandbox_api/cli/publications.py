"""``sandbox publication`` and ``sandbox open-data``: released results opened to the public.

An operator proposes one of their released results; a policy officer (never the proposer) publishes or
refuses it; a policy officer or an admin withdraws a published table. ``open-data`` reads the public
catalog, which needs no token.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from sandbox_api.cli.common import DEFAULT_URL, Token, Url, fail, job_id, note, remote, resolve
from sandbox_api.cli.output import AsCsv, AsJson, OutFile, Shown, emit

if TYPE_CHECKING:
    from sandbox_api.client.auditor import AuditorClient
    from sandbox_api.schemas import PublicationOut

publication_app = typer.Typer(
    help="Propose released results for the public open-data catalog, and decide on proposals.",
    no_args_is_help=True,
)
open_data_app = typer.Typer(help="The public open-data catalog (no token needed).", no_args_is_help=True)

PublicationId = Annotated[str, typer.Argument(help="The publication's id, or a unique prefix of it.")]
PUBLICATION_ID_LENGTH = 32


def publication_id(client: AuditorClient, prefix: str) -> str:
    return resolve(
        prefix,
        lambda: (p.publication_id for p in client.list_publications()),
        full_length=PUBLICATION_ID_LENGTH,
        what="publication",
    )


def published_id(client: AuditorClient, prefix: str) -> str:
    return resolve(
        prefix,
        lambda: (e.publication_id for e in client.open_data()),
        full_length=PUBLICATION_ID_LENGTH,
        what="published table",
    )


def _told(publication: PublicationOut, *, as_json: bool) -> None:
    if as_json:
        emit(Shown.fields({}, document=publication.model_dump(mode="json")), as_json=True)
        return
    emit(
        Shown.fields(
            {
                "publication": publication.publication_id,
                "state": publication.state,
                "title": publication.title,
                "job": publication.job_id,
                "scope": publication.scope,
                "purpose": publication.purpose,
                "proposed": f"{publication.proposed_at} by {publication.proposed_by}",
                "decided": ""
                if publication.decided_at is None
                else f"{publication.decided_at} by "
                f"{publication.decided_by}: {publication.decision_reason or ''}",
                "withdrawn": ""
                if publication.withdrawn_at is None
                else f"{publication.withdrawn_at} by "
                f"{publication.withdrawn_by}: {publication.withdrawal_reason or ''}",
            },
            document=publication.model_dump(mode="json"),
        )
    )


@publication_app.command("propose")
def publication_propose(
    job: Annotated[str, typer.Argument(help="Your released job's id, or a unique prefix of it.")],
    title: Annotated[str, typer.Option(help="The title the public reads.")],
    description: Annotated[str, typer.Option(help="What the table shows and how to read it.")] = "",
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Propose one of your released results for the public catalog; a policy officer decides."""
    with remote(url, token) as client:
        proposed = client.propose_publication(job_id(client, job), title=title, description=description)
    _told(proposed, as_json=as_json)
    if not as_json:
        note(f"a policy officer decides: sandbox publication publish {proposed.publication_id[:8]}")


@publication_app.command("list")
def publication_list(
    state: Annotated[
        Literal["proposed", "published", "refused", "withdrawn"] | None,
        typer.Option(help="Only proposals in this state."),
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Proposals and their decisions, newest first (operators: their own)."""
    with remote(url, token) as client:
        publications = client.list_publications(state=state)
    shown = Shown(
        columns=("publication", "state", "title", "job", "proposed by", "proposed", "decided by"),
        rows=[
            (
                p.publication_id[:12],
                p.state,
                p.title,
                p.job_id[:12],
                p.proposed_by,
                p.proposed_at,
                p.decided_by,
            )
            for p in publications
        ],
        document=[p.model_dump(mode="json") for p in publications],
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@publication_app.command("show")
def publication_show(
    publication: PublicationId, url: Url = DEFAULT_URL, token: Token = "", as_json: AsJson = False
) -> None:
    """One proposal and where it stands."""
    with remote(url, token) as client:
        shown = client.get_publication(publication_id(client, publication))
    _told(shown, as_json=as_json)


@publication_app.command("publish")
def publication_publish(
    publication: PublicationId,
    reason: Annotated[str, typer.Option(help="Why it may be public (audited).")] = "",
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Publish a proposal to the public catalog (a policy officer, never the proposer)."""
    with remote(url, token) as client:
        decided = client.publish(publication_id(client, publication), reason=reason)
    _told(decided, as_json=as_json)


@publication_app.command("refuse")
def publication_refuse(
    publication: PublicationId,
    reason: Annotated[str, typer.Option(help="What the proposer should change (required, audited).")],
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Refuse a proposal, with a reason the proposer can act on."""
    if not reason.strip():
        raise fail("give --reason: the proposer needs to know why")
    with remote(url, token) as client:
        decided = client.refuse_publication(publication_id(client, publication), reason=reason)
    _told(decided, as_json=as_json)


@publication_app.command("withdraw")
def publication_withdraw(
    publication: PublicationId,
    reason: Annotated[str, typer.Option(help="Why it leaves the public catalog (required, audited).")],
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Withdraw a published table from the public catalog (a policy officer or an admin)."""
    if not reason.strip():
        raise fail("give --reason: a withdrawal is kept in the audit log with its reason")
    with remote(url, token) as client:
        decided = client.withdraw_publication(publication_id(client, publication), reason=reason)
    _told(decided, as_json=as_json)


@open_data_app.command("list")
def open_data_list(
    url: Url = DEFAULT_URL, as_json: AsJson = False, as_csv: AsCsv = False, out: OutFile = None
) -> None:
    """Every published table, newest first."""
    with remote(url, "") as client:
        entries = client.open_data()
    shown = Shown(
        columns=("publication", "title", "published", "rows", "purpose"),
        rows=[(e.publication_id[:12], e.title, e.published_at, e.row_count, e.purpose) for e in entries],
        document=[e.model_dump(mode="json") for e in entries],
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@open_data_app.command("show")
def open_data_show(
    publication: PublicationId,
    url: Url = DEFAULT_URL,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """One published table (``--json`` adds its signed receipt)."""
    with remote(url, "") as client:
        table = client.open_data_table(published_id(client, publication))
    if not (as_json or as_csv or out):
        note(f"{table.title} ({table.published_at}): {table.description or table.purpose}")
    emit(
        Shown(columns=table.columns, rows=table.rows, document=table.model_dump(mode="json")),
        as_json=as_json,
        as_csv=as_csv,
        out=out,
    )


@open_data_app.command("download")
def open_data_download(
    publication: PublicationId,
    out: Annotated[Path, typer.Option("--out", help="Where to write the CSV file.")],
    url: Url = DEFAULT_URL,
) -> None:
    """One published table as the gateway's CSV file."""
    with remote(url, "") as client:
        text = client.open_data_csv(published_id(client, publication))
    out.write_text(text, encoding="utf-8")
    note(f"wrote {out}")
