"""How commands show what they got: a readable table by default, ``--json``, ``--csv`` and ``--out FILE``.

A command builds one ``Shown`` (the columns and rows a person reads, and the whole answer for machines)
and passes it to ``emit`` with the options the user gave. ``--json`` prints the whole answer, not only
the table's columns; ``--out`` writes instead of printing, in the format the flags or the file's suffix
name (``.json``, ``.csv``), else the table as plain text.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import typer

Format = Literal["table", "json", "csv"]

AsJson = Annotated[bool, typer.Option("--json", help="Print the whole answer as JSON instead of a table.")]
AsCsv = Annotated[bool, typer.Option("--csv", help="Print the table as CSV.")]
OutFile = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Write to this file instead of printing (JSON or CSV as --json/--csv or the suffix say).",
        dir_okay=False,
    ),
]

# Width of a table printed to something that is not a terminal (a pipe, a file): wide enough for a
# full 64-character id and a few columns beside it, so rows do not wrap mid-id.
_PIPE_WIDTH: Final = 200


@dataclass(frozen=True)
class Shown:
    """What a command shows: ``columns`` and ``rows`` for people and CSV, ``document`` for ``--json``."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    document: Any
    title: str | None = None
    notes: Sequence[str] = field(default_factory=tuple)

    @classmethod
    def fields(cls, values: Mapping[str, Any], *, document: Any = None, title: str | None = None) -> Shown:
        """One object as a two-column table of its fields (``document`` defaults to ``values``)."""
        return cls(
            columns=("field", "value"),
            rows=[(name, value) for name, value in values.items()],
            document=dict(values) if document is None else document,
            title=title,
        )


def cell(value: Any) -> str:
    """A value as a person reads it in a table or CSV cell.

    >>> cell(None), cell(["a", "b"]), cell(0.1234567), cell({"k": 1}), cell(True)
    ('', 'a, b', '0.123457', '{"k": 1}', 'true')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(cell(item) for item in value)
    if isinstance(value, Mapping):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)


def chosen_format(*, as_json: bool, as_csv: bool, out: Path | None) -> Format:
    """The format the flags name, else the one ``out``'s suffix names, else a table.

    >>> chosen_format(as_json=False, as_csv=False, out=Path("jobs.csv"))
    'csv'
    >>> chosen_format(as_json=True, as_csv=False, out=Path("jobs.txt"))
    'json'
    """
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv")
    if as_json:
        return "json"
    if as_csv:
        return "csv"
    suffix = out.suffix.lower() if out is not None else ""
    return "json" if suffix == ".json" else "csv" if suffix == ".csv" else "table"


def as_json_text(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def as_csv_text(shown: Shown) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(shown.columns)
    writer.writerows([cell(value) for value in row] for row in shown.rows)
    return buffer.getvalue()


def as_table_text(shown: Shown, *, terminal: bool) -> str:
    """The rows as a table (rich), coloured only for a terminal."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=shown.title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False)
    for name in shown.columns:
        table.add_column(name, overflow="fold")
    for row in shown.rows:
        table.add_row(*(cell(value) for value in row))
    console = Console(
        file=io.StringIO(),
        width=None if terminal else _PIPE_WIDTH,
        force_terminal=terminal,
        no_color=not terminal,
        highlight=False,
    )
    console.print(table)
    for line in shown.notes:
        console.print(line, markup=False)
    if not shown.rows:
        console.print("(none)")
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return str(text)


def emit(shown: Shown, *, as_json: bool = False, as_csv: bool = False, out: Path | None = None) -> None:
    """Print ``shown`` (or write it to ``out``) in the format the options choose."""
    fmt = chosen_format(as_json=as_json, as_csv=as_csv, out=out)
    if fmt == "json":
        text = as_json_text(shown.document) + "\n"
    elif fmt == "csv":
        text = as_csv_text(shown)
    else:
        text = as_table_text(shown, terminal=out is None and sys.stdout.isatty())
    if out is None:
        typer.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    typer.secho(f"wrote {out}", err=True, fg=typer.colors.CYAN)
