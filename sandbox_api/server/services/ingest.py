"""Turn uploaded CSV or Parquet files into typed Arrow tables that match the manifest, or say what to fix.

Nothing here stores anything: a file that fails any check leaves no trace.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from typing import BinaryIO, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sandbox_api.errors import InvalidUpload
from sandbox_api.manifest import TableDecl

ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "DATE": pa.date32(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us"),
}
PARQUET_MAGIC = b"PAR1"
_CHUNK = 1 << 20

FileFormat = Literal["csv", "parquet"]


@dataclass(frozen=True)
class UploadedFile:
    field: str
    filename: str
    content_type: str
    stream: BinaryIO


def detect_format(upload: UploadedFile) -> FileFormat:
    name = upload.filename.lower()
    if name.endswith(".parquet") or upload.content_type in {
        "application/vnd.apache.parquet",
        "application/parquet",
    }:
        return "parquet"
    if name.endswith((".csv", ".csv.txt")) or upload.content_type in {"text/csv", "application/csv"}:
        return "csv"
    upload.stream.seek(0)
    head = upload.stream.read(4)
    upload.stream.seek(0)
    if head == PARQUET_MAGIC:
        return "parquet"
    raise InvalidUpload(
        f"file for table {upload.field!r} ({upload.filename!r}) is neither CSV nor Parquet; "
        "name it *.csv or *.parquet"
    )


def target_schema(table: TableDecl) -> pa.Schema:
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in table.columns])


def read_upload(upload: UploadedFile, table: TableDecl) -> pa.Table:
    """Parse and type-check one file against its manifest entry."""
    fmt = detect_format(upload)
    upload.stream.seek(0)
    parsed = _read_csv(upload, table) if fmt == "csv" else _read_parquet(upload, table)
    _check_unit(parsed, table)
    _check_nulls(parsed, table)
    _check_domains(parsed, table)
    return parsed


def _read_csv(upload: UploadedFile, table: TableDecl) -> pa.Table:
    _check_utf8(upload)
    header = _csv_header(upload)
    _check_columns(upload, table, header)
    schema = target_schema(table)
    try:
        parsed = pacsv.read_csv(
            upload.stream,
            read_options=pacsv.ReadOptions(use_threads=True, block_size=4 << 20),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={f.name: f.type for f in schema},
                include_columns=[f.name for f in schema],
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidUpload(
            f"CSV for table {table.name!r} could not be read: {_first_line(exc)}. "
            "Every row needs the same number of fields as the header, and every value must match the "
            "declared column type",
            findings=[{"rule": "csv", "message": str(exc)[:500]}],
        ) from exc
    return parsed.select([f.name for f in schema])


def _check_utf8(upload: UploadedFile) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    line = 1
    while chunk := upload.stream.read(_CHUNK):
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            bad = offset + exc.start
            line += chunk[: exc.start].count(b"\n")
            raise InvalidUpload(
                f"CSV for table {upload.field!r} is not UTF-8 (invalid byte at offset {bad}, line {line}); "
                "re-save the file as UTF-8"
            ) from exc
        offset += len(chunk)
        line += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise InvalidUpload(
            f"CSV for table {upload.field!r} ends inside a multi-byte character; re-save the file as UTF-8"
        ) from exc
    upload.stream.seek(0)


def _csv_header(upload: UploadedFile) -> list[str]:
    first = upload.stream.readline(1 << 16)
    upload.stream.seek(0)
    text = first.decode("utf-8").lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not rows[0]:
        raise InvalidUpload(f"CSV for table {upload.field!r} is empty; the first line must name the columns")
    return [name.strip() for name in rows[0]]


def _read_parquet(upload: UploadedFile, table: TableDecl) -> pa.Table:
    head = upload.stream.read(4)
    upload.stream.seek(0)
    if head != PARQUET_MAGIC:
        raise InvalidUpload(f"file for table {table.name!r} is not a Parquet file (no PAR1 header)")
    try:
        parsed = pq.read_table(upload.stream)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidUpload(
            f"Parquet file for table {table.name!r} is corrupted or truncated: {_first_line(exc)}; "
            "export it again",
        ) from exc
    _check_columns(upload, table, parsed.column_names)
    schema = target_schema(table)
    problems = []
    columns = []
    for field in schema:
        column = parsed.column(field.name)
        try:
            columns.append(column.cast(field.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            problems.append(f"column {field.name!r} is {column.type}, the manifest declares {field.type}")
    if problems:
        raise InvalidUpload(
            f"Parquet file for table {table.name!r} does not match the manifest: " + "; ".join(problems),
            findings=[{"rule": "schema", "message": p} for p in problems],
        )
    return pa.Table.from_arrays(columns, schema=schema)


def _check_columns(upload: UploadedFile, table: TableDecl, present: list[str]) -> None:
    declared = [c.name for c in table.columns]
    missing = [n for n in declared if n not in present]
    extra = [n for n in present if n not in declared]
    duplicates = sorted({n for n in present if present.count(n) > 1})
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"undeclared columns {extra} (declare them in the manifest or remove them)")
    if duplicates:
        problems.append(f"duplicate columns {duplicates}")
    if problems:
        raise InvalidUpload(
            f"file for table {table.name!r} does not match the manifest: " + "; ".join(problems),
            findings=[{"rule": "schema", "message": p} for p in problems],
        )


def _check_unit(parsed: pa.Table, table: TableDecl) -> None:
    column = parsed.column(table.unit)
    nulls = missing_values(column)
    if nulls:
        raise InvalidUpload(
            f"table {table.name!r}: the unit column {table.unit!r} has {nulls} empty values; "
            "every row must belong to a privacy unit"
        )
    if table.one_row_per_unit and pc.count_distinct(column).as_py() != parsed.num_rows:
        # A broken promise would let differential privacy skip the per-unit sample of a table whose
        # units have several rows, and its noise would then be too small: refuse the upload.
        raise InvalidUpload(
            f"table {table.name!r} is declared one_row_per_unit, but some {table.unit!r} values occur in "
            "more than one row; remove the declaration or the repeated rows"
        )


def missing_values(column: pa.ChunkedArray) -> int:
    """Nulls, and empty strings in a text column (a CSV cannot tell them apart)."""
    count = column.null_count
    if pa.types.is_string(column.type):
        count += pc.sum(pc.equal(column, "")).as_py() or 0
    return int(count)


def _check_nulls(parsed: pa.Table, table: TableDecl) -> None:
    """A column declared ``nullable: false`` holds a value in every row."""
    problems = [
        f"column {c.name!r} is declared nullable: false but has {n} missing value(s)"
        for c in table.columns
        if not c.nullable and (n := missing_values(parsed.column(c.name)))
    ]
    if problems:
        raise InvalidUpload(
            f"table {table.name!r} does not match its manifest: "
            + "; ".join(problems)
            + " (fill the values, or declare the column nullable)",
            findings=[{"rule": "nulls", "message": p} for p in problems],
        )


def _check_domains(parsed: pa.Table, table: TableDecl) -> None:
    """Every value lies in its column's declared domain (categories, or a low..high range).

    The declared domain is what mock twins are drawn from and what DP bounds and scope reviews rely on; a
    value outside it would make them wrong without anyone noticing, so the upload is refused instead.
    Missing values are not outside the domain. The examples come from the steward's own file."""
    problems = []
    for column in table.columns:
        if column.domain is None:
            continue
        values = parsed.column(column.name)
        domain = column.domain
        outside: pa.ChunkedArray | None = None
        if domain.categories is not None:
            # Categories are declared as text: compare the column's text form.
            text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
            allowed = pa.array(list(domain.categories), type=pa.string())
            outside = pc.invert(pc.fill_null(pc.is_in(text, value_set=allowed), True))
        else:
            for limit, compare in ((domain.low, pc.less), (domain.high, pc.greater)):
                if limit is None:
                    continue
                beyond = pc.fill_null(compare(values, _as_scalar(limit, values.type, column.name)), False)
                outside = beyond if outside is None else pc.or_(outside, beyond)
        if outside is None:
            continue
        count = pc.sum(outside).as_py() or 0
        if count:
            examples = sorted({str(v) for v in pc.filter(values, outside).slice(0, 200).to_pylist()})[:3]
            declared = (
                f"categories {list(domain.categories)}"
                if domain.categories is not None
                else f"range [{domain.low}, {domain.high}]"
            )
            problems.append(
                f"column {column.name!r}: {count} value(s) outside the declared {declared}, e.g. {examples}"
            )
    if problems:
        raise InvalidUpload(
            f"table {table.name!r} does not match its manifest's value domains: "
            + "; ".join(problems)
            + " (correct the file, or widen the declared domain in the manifest)",
            findings=[{"rule": "domain", "message": p} for p in problems],
        )


def _as_scalar(limit: object, type_: pa.DataType, column: str) -> pa.Scalar:
    try:
        return pa.scalar(limit).cast(type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise InvalidUpload(
            f"column {column!r}: the declared range limit {limit!r} is not a {type_} value; "
            "correct the manifest"
        ) from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
