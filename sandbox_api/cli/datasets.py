"""``sandbox dataset``: the catalog as stewards, officers and operators see it (never rows).

``infer`` drafts a manifest from a file's header on this machine, without a gateway; ``upload`` sends
it with the tables and says how large they were and how fast they went.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from sandbox_api.cli.common import (
    DEFAULT_URL,
    Token,
    Url,
    dataset_version_id,
    fail,
    note,
    refusal,
    remote,
    split_dataset,
)
from sandbox_api.cli.output import AsCsv, AsJson, OutFile, Shown, emit
from sandbox_api.errors import InvalidInput

if TYPE_CHECKING:
    from sandbox_api.schemas import DatasetOut, TableOut

dataset_app = typer.Typer(
    help="Datasets in the catalog: schemas, versions, row counts.", no_args_is_help=True
)

Dataset = Annotated[str, typer.Argument(help="The dataset as DOMAIN/NAME.")]
Version = Annotated[str, typer.Argument(help="The version id, or a unique prefix of it.")]
Reason = Annotated[str, typer.Option(help="Why (recorded in the audit log).")]

# The manifest's column type for each Arrow type family, and the class a drafted column starts with:
# every column starts "internal", the unit column "identifying"; the steward decides the rest.
_KIBIBYTE: Final = 1024
_MEBIBYTE: Final = 1024 * 1024


@dataset_app.command("list")
def dataset_list(
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """Datasets you may see: current version, tables and row counts (never rows)."""
    with remote(url, token) as client:
        datasets = client.list_datasets()
    rows = []
    for dataset in datasets:
        current = _current(dataset)
        tables = [] if current is None else current.tables
        rows.append(
            (
                f"{dataset.domain}/{dataset.name}",
                (dataset.current_version or "")[:12],
                len(dataset.versions),
                ", ".join(_table_words(t) for t in tables),
                dataset.description,
            )
        )
    shown = Shown(
        columns=("dataset", "current", "versions", "tables", "description"),
        rows=rows,
        document=[d.model_dump(mode="json", by_alias=True) for d in datasets],
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@dataset_app.command("show")
def dataset_show(
    dataset: Dataset,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """One dataset: the columns of its current version (type, class) and every version's state."""
    domain, name = split_dataset(dataset)
    with remote(url, token) as client:
        found = client.get_dataset(domain, name)
    current = _current(found)
    rows = [
        (table.name, column.name, column.type, column.cls, "unit" if column.name == table.unit else "")
        for table in (current.tables if current is not None else ())
        for column in table.columns
    ]
    notes = [f"{found.domain}/{found.name}: {found.description}".rstrip(": ")]
    notes += [
        f"version {v.version_id[:12]} {v.state:<8} {v.created_at} by {v.created_by}"
        + ("  (current)" if v.version_id == found.current_version else "")
        for v in found.versions
    ]
    shown = Shown(
        columns=("table", "column", "type", "class", ""),
        rows=rows,
        document=found.model_dump(mode="json", by_alias=True),
        notes=notes,
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@dataset_app.command("upload")
def dataset_upload(
    dataset: Dataset,
    manifest: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Manifest JSON file.")],
    table: Annotated[
        list[str], typer.Option("--table", help="TABLE=PATH of a CSV or Parquet file (repeatable).")
    ],
    create: Annotated[bool, typer.Option(help="Declare the dataset first.")] = False,
    description: Annotated[str, typer.Option(help="Description used with --create.")] = "",
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Upload a new version of a dataset (steward of its domain); --create declares it first."""
    from sandbox_api.client.api_client import ClientError

    domain, name = split_dataset(dataset)
    tables = _table_files(table)
    try:
        manifest_body = json.loads(manifest.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as bad:
        raise fail(f"{manifest} is not valid JSON: {bad}") from None
    size = sum(path.stat().st_size for path in tables.values())
    with remote(url, token) as client:
        if create:
            client.create_dataset(domain, name, description=description)
        note(f"uploading {len(tables)} table(s), {human_size(size)}, to {domain}/{name}…")
        started = time.monotonic()
        sent = [0]
        try:
            with _upload_bar(size) as advance:

                def progress(count: int) -> None:
                    sent[0] += count
                    advance(count)

                stored = client.upload_version(
                    domain, name, manifest=manifest_body, tables=tables, on_progress=progress
                )
        except ClientError as refused:
            hint = None
            if refused.status == 404 and not create:
                hint = f"is {domain}/{name} declared? Add --create to declare it with this upload"
            raise fail(refusal(refused, hint=hint)) from None
    took = max(time.monotonic() - started, 1e-6)
    note(f"sent {human_size(sent[0])} in {took:.1f} s ({human_size(round(sent[0] / took))}/s)")
    version = stored.version
    rows = [(t.name, t.row_count, t.unit, len(t.columns)) for t in version.tables]
    shown = Shown(
        columns=("table", "rows", "unit", "columns"),
        rows=rows,
        document=stored.model_dump(mode="json", by_alias=True),
        title=f"{stored.dataset} version {version.version_id[:12]}"
        + ("" if stored.created else " (already stored: identical content)"),
    )
    emit(shown, as_json=as_json)
    if version.state == "draft":
        note(
            f"stored as a draft: a second steward of {domain} reviews it with "
            f"`sandbox dataset review {stored.dataset} {version.version_id[:12]}`, then publishes or "
            "returns it"
        )
    else:
        note("next: a policy officer grants it in a scope: sandbox scope create SCOPE.yaml")


@contextmanager
def _upload_bar(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar with size and rate on a terminal's standard error; nothing elsewhere."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    console = Console(stderr=True)
    columns = (TextColumn("uploading"), BarColumn(), DownloadColumn(binary_units=True), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("upload", total=total)
        yield lambda count: bar.advance(task, count)


def human_size(count: int) -> str:
    """A byte count as a person reads it.

    >>> human_size(512), human_size(20_480), human_size(3 * 1024 * 1024)
    ('512 B', '20.0 KiB', '3.0 MiB')
    """
    if count < _KIBIBYTE:
        return f"{count} B"
    if count < _MEBIBYTE:
        return f"{count / _KIBIBYTE:.1f} KiB"
    return f"{count / _MEBIBYTE:.1f} MiB"


def _table_files(items: list[str]) -> dict[str, Path]:
    tables: dict[str, Path] = {}
    for item in items:
        table_name, sep, path = item.partition("=")
        if not sep or not table_name or not path:
            raise fail(f"--table {item!r}: write it as TABLE=PATH")
        if not Path(path).is_file():
            raise fail(f"--table {item!r}: {path} is not a file")
        tables[table_name] = Path(path)
    return tables


@dataset_app.command("retire")
def dataset_retire(
    dataset: Dataset,
    version: Version,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Retire a version: no new job reads it; its data stays for replay (steward of the domain)."""
    domain, name = split_dataset(dataset)
    with remote(url, token) as client:
        full = dataset_version_id(client, domain, name, version)
        found = client.retire_version(domain, name, full)
    typer.echo(f"retired version {full[:12]} of {domain}/{name}; current: {found.current_version or '-'}")
    if as_json:
        emit(Shown.fields({}, document=found.model_dump(mode="json", by_alias=True)), as_json=True)


@dataset_app.command("review")
def dataset_review(
    dataset: Dataset,
    version: Version,
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
    as_csv: AsCsv = False,
    out: OutFile = None,
) -> None:
    """One version's state, review and validation report: every check against its manifest."""
    domain, name = split_dataset(dataset)
    with remote(url, token) as client:
        full = dataset_version_id(client, domain, name, version)
        found = client.get_version(domain, name, full)
    report = found.validation
    rows = [
        (t.name, c.check, c.column or "", "pass" if c.passed else "FAIL", c.detail)
        for t in (report.tables if report is not None else ())
        for c in t.checks
    ]
    notes = [
        f"{dataset} version {full[:12]}: {found.state}, uploaded {found.created_at} by {found.created_by}"
    ]
    if found.reviewed_by:
        notes.append(f"reviewed by {found.reviewed_by} at {found.reviewed_at}: {found.review_reason or '-'}")
    if report is None:
        notes.append("no validation report (stored before reports existed, or not yours to see)")
    else:
        notes.append("validation " + ("passed" if report.passed else "FAILED"))
    shown = Shown(
        columns=("table", "check", "column", "result", "detail"),
        rows=rows,
        document=found.model_dump(mode="json", by_alias=True),
        notes=notes,
    )
    emit(shown, as_json=as_json, as_csv=as_csv, out=out)


@dataset_app.command("publish")
def dataset_publish(
    dataset: Dataset,
    version: Version,
    reason: Reason = "",
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Publish a draft another steward of the domain uploaded: it becomes the current version."""
    domain, name = split_dataset(dataset)
    with remote(url, token) as client:
        full = dataset_version_id(client, domain, name, version)
        found = client.publish_version(domain, name, full, reason=reason)
    typer.echo(f"published version {full[:12]} of {domain}/{name}; current: {found.current_version or '-'}")
    if as_json:
        emit(Shown.fields({}, document=found.model_dump(mode="json", by_alias=True)), as_json=True)


@dataset_app.command("return")
def dataset_return(
    dataset: Dataset,
    version: Version,
    reason: Annotated[str, typer.Option(help="What the uploader must correct (recorded in the audit log).")],
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Return a draft another steward of the domain uploaded for correction, with reasons."""
    domain, name = split_dataset(dataset)
    with remote(url, token) as client:
        full = dataset_version_id(client, domain, name, version)
        found = client.return_version(domain, name, full, reason=reason)
    typer.echo(f"returned version {full[:12]} of {domain}/{name} for correction: {reason}")
    if as_json:
        emit(Shown.fields({}, document=found.model_dump(mode="json", by_alias=True)), as_json=True)


@dataset_app.command("shred")
def dataset_shred(
    dataset: Dataset,
    version: Version,
    reason: Reason = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Crypto-shred a dataset version: its data key is destroyed and the data can never be read again."""
    domain, name = split_dataset(dataset)
    with remote(url, token) as client:
        full = dataset_version_id(client, domain, name, version)
        if not yes:
            typer.confirm(f"destroy version {full} of {dataset} for good?", abort=True)
        shredded = client.shred_version(domain, name, full, reason=reason)
    emit(Shown.fields(shredded.model_dump(mode="json")), as_json=True)


@dataset_app.command("infer")
def dataset_infer(
    files: Annotated[
        list[Path], typer.Argument(exists=True, dir_okay=False, help="CSV or Parquet files, one per table.")
    ],
    unit: Annotated[
        str | None, typer.Option(help="The privacy-unit column (default: the first column).")
    ] = None,
    out: OutFile = None,
) -> None:
    """Draft a manifest from the files' headers (no gateway, no rows read beyond the types).

    Every column starts as class "internal" and the unit column as "identifying": review each class
    before uploading (docs/cli.md explains them)."""
    tables = [_draft_table(path, unit=unit) for path in files]
    text = json.dumps({"tables": tables}, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        note(f"wrote {out}")
    note("review every column's class (public, internal, sensitive, identifying) before uploading")


def _draft_table(path: Path, *, unit: str | None) -> dict[str, Any]:
    # Imported here: drafting reads the file with Arrow, which other commands never load (start-up time).
    from sandbox_api.manifest_draft import draft_table, schema_of_file

    try:
        return draft_table(path.stem, schema_of_file(path), unit=unit)
    except InvalidInput as unusable:
        raise fail(str(unusable)) from None


def _current(dataset: DatasetOut) -> Any:
    return next((v for v in dataset.versions if v.version_id == dataset.current_version), None)


def _table_words(table: TableOut) -> str:
    """A table and, where the gateway shows it (not to operators), its row count."""
    return table.name if table.row_count is None else f"{table.name} ({table.row_count:,} rows)"
