"""How a dataset version's tables become multipart parts: files by path (streamed, with progress, when
the caller wants it) and in-memory DataFrames or Arrow tables (encoded to Parquet)."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    # pandas and pyarrow are imported where tables are built, not here: a command line that only lists
    # jobs should not wait a second for them (``sandbox_api/cli`` imports the client).
    import pandas as pd
    import pyarrow as pa

TableSource: TypeAlias = "Path | str | pd.DataFrame | pa.Table"


def _parquet_bytes(source: pd.DataFrame | pa.Table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = source if isinstance(source, pa.Table) else pa.Table.from_pandas(source, preserve_index=False)
    # Drop pandas' schema metadata: the gateway hashes canonical content, not how the frame was built.
    table = table.replace_schema_metadata(None)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


class _ReportingReader(io.BufferedReader):
    """A table file that the multipart encoder reads in chunks, telling ``on_read`` each chunk's size
    (negative when the encoder rewinds it to send it again, after a 429)."""

    def __init__(self, path: Path, on_read: Callable[[int], None]) -> None:
        super().__init__(io.FileIO(path, "r"))
        self._on_read = on_read

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self._on_read(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        before = self.tell()
        after = super().seek(offset, whence)
        self._on_read(after - before)
        return after


def upload_part(
    table: str, source: TableSource, *, stack: ExitStack, on_read: Callable[[int], None] | None
) -> tuple[str, tuple[str, bytes | io.BufferedReader, str]]:
    """The multipart part of one table; an opened file is closed by ``stack``."""
    if not isinstance(source, Path | str):
        return table, (f"{table}.parquet", _parquet_bytes(source), "application/vnd.apache.parquet")
    path = Path(source)
    suffix = path.suffix.lower()
    media = "text/csv" if suffix == ".csv" else "application/vnd.apache.parquet"
    if on_read is None:
        return table, (path.name, path.read_bytes(), media)
    return table, (path.name, stack.enter_context(_ReportingReader(path, on_read)), media)
