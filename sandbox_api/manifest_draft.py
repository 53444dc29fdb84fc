"""A manifest drafted from a data file's header: column names, types inferred by Arrow, and a first
class for each column. The CLI drafts from a whole file on the steward's machine (``sandbox dataset
infer``); the console drafts from a capped sample the browser sends (the head of a CSV file, the tail of a
Parquet file, where its schema lives). One implementation, so both draft the same manifest."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Final, get_args

from sandbox_api.errors import InvalidInput, PayloadTooLarge
from sandbox_api.manifest import ColumnClassName, ColumnType

CLASSES: Final[tuple[str, ...]] = get_args(ColumnClassName)
TYPES: Final[tuple[str, ...]] = get_args(ColumnType)
# The most a console draft reads: enough for a header and the first rows to infer types from.
SAMPLE_BYTES: Final = 64 * 1024
_PARQUET_MAGIC: Final = b"PAR1"

_ARROW_TYPES: Final = (
    ("bool", "BOOLEAN"),
    ("int", "BIGINT"),
    ("uint", "BIGINT"),
    ("float", "DOUBLE"),
    ("double", "DOUBLE"),
    ("decimal", "DOUBLE"),
    ("date", "DATE"),
    ("timestamp", "TIMESTAMP"),
)


def manifest_type(arrow_type: str) -> str:
    """The manifest's column type for an Arrow type name (text for anything else).

    >>> manifest_type("int64"), manifest_type("date32[day]"), manifest_type("large_string")
    ('BIGINT', 'DATE', 'VARCHAR')
    """
    for prefix, declared in _ARROW_TYPES:
        if arrow_type.startswith(prefix):
            return declared
    return "VARCHAR"


def draft_table(name: str, schema: Any, *, unit: str | None = None) -> dict[str, Any]:
    """A manifest table for an Arrow schema: every column "internal", the unit (default: the first
    column) "identifying". The steward reviews each class before uploading."""
    names = list(schema.names)
    if not names:
        raise InvalidInput(f"{name}: no columns")
    chosen = unit or names[0]
    if chosen not in names:
        raise InvalidInput(f"{name}: no column {chosen!r} to be the unit; columns: {', '.join(names)}")
    columns = [
        {
            "name": field.name,
            "type": manifest_type(str(field.type)),
            "class": "identifying" if field.name == chosen else "internal",
        }
        for field in schema
    ]
    return {"name": name, "unit": chosen, "columns": columns}


def schema_of_file(path: Path) -> Any:
    """The Arrow schema of a whole CSV or Parquet file (Parquet by its suffix)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_schema(path)
        with pacsv.open_csv(path) as reader:
            return reader.schema
    except (pa.ArrowInvalid, OSError) as unreadable:
        raise InvalidInput(f"{path}: not a readable CSV or Parquet file ({unreadable})") from None


def schema_of_sample(sample: bytes, *, parquet: bool, whole: bool) -> Any:
    """The Arrow schema from a sample of a file: for CSV its first bytes (cut back to the last whole
    line unless ``whole``), for Parquet its last bytes, which hold the footer with the schema. The sample
    is parsed in memory and never stored."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if not sample:
        raise InvalidInput("the sample is empty: pick a CSV or Parquet file with a header")
    if len(sample) > SAMPLE_BYTES:
        raise PayloadTooLarge(f"the sample is {len(sample)} bytes; at most {SAMPLE_BYTES} are read")
    try:
        if parquet:
            # The footer's offsets count from the file's end; the leading magic lets Arrow open a tail.
            framed = sample if whole else _PARQUET_MAGIC + sample
            return pq.read_schema(pa.BufferReader(framed))
        text = sample if whole else sample[: sample.rfind(b"\n") + 1]
        if not text.strip():
            raise InvalidInput("the sample holds no whole line: is the header longer than the sample?")
        return pacsv.read_csv(io.BytesIO(text)).schema
    except (pa.ArrowInvalid, OSError) as unreadable:
        kind = "Parquet" if parquet else "CSV"
        raise InvalidInput(f"not a readable {kind} file ({unreadable})") from None
