"""Encrypted, unit-partitioned storage of dataset versions.

Layout: ``root/<domain>/<dataset>/<version_id>/<table>/part-00000.enc``. Each part is one Parquet file
(built in memory) sealed with AES-256-GCM under the version's data key, with associated data
``f"{domain}/{dataset}/{version_id}/{table}/{i}"``, so a part moved to another index, table, version or
dataset fails to unseal. Rows are placed by a keyed hash of the privacy unit, so every unit lives in
exactly one part and per-part distinct counts add up exactly (docs/design.md §7).

Plaintext exists only in memory: parts are encrypted before they touch disk, and reading returns an
in-memory Arrow table.

**Canonical plaintext (the version id).** ``version_id_of`` hashes, for each table in name order, the
table name and then the Arrow IPC stream of the table with schema and field metadata removed, rows
sorted ascending by every column (in schema order, nulls last), written in batches of
``CANONICAL_BATCH_ROWS`` rows. Equal rows are indistinguishable, so this order is total; the id is
therefore independent of the input row order, of how the input is chunked, and of the part count.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crypto.errors import CryptoError, IntegrityError
from crypto.profile import Hasher, seal_data, unseal_data
from crypto.pseudonym import partitioner
from executors.base import PartRef, TableInput, VersionLayout
from executors.errors import DataUnavailable, PartIntegrityError, StorageError

CANONICAL_BATCH_ROWS = 65_536
PARQUET_COMPRESSION = "zstd"
# A string column whose stored chunks average fewer uncompressed bytes per value than this holds
# dictionary indices (a few bits a row), not plain strings (a 4-byte length and the bytes, every row):
# reading it as an Arrow dictionary skips building one string per row, and DuckDB then hashes each
# distinct value once per batch instead of once per row. Only a speed choice: the engine sees VARCHAR.
DICTIONARY_BYTES_PER_VALUE = 3.0
# Below this many stored bytes a table's parts decrypt on one thread: in a freshly forked sandbox,
# starting threads (each with its own fresh allocator arena) costs more than it saves. Measured on the
# demo's 200,000 citizens (6 MB in 8 parts): 5-7 ms on one thread against 9-10 ms on two.
PARALLEL_DECRYPT_MIN_BYTES = 32 * 2**20
_T = TypeVar("_T")
_R = TypeVar("_R")
# Names become path components: no separators, no dot-only names, nothing hidden.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def part_aad(*, domain: str, dataset: str, version_id: str, table: str, index: int) -> bytes:
    """The associated data that binds part ``index`` to its place.

    >>> part_aad(domain="health", dataset="visits", version_id="ab12", table="visits", index=3)
    b'health/visits/ab12/visits/3'
    """
    return f"{domain}/{dataset}/{version_id}/{table}/{index}".encode()


def part_name(index: int) -> str:
    """The file name of part ``index``.

    >>> part_name(7)
    'part-00007.enc'
    """
    return f"part-{index:05d}.enc"


def _canonical(table: pa.Table) -> pa.Table:
    schema = pa.schema([pa.field(f.name, f.type, f.nullable) for f in table.schema])
    plain = pa.Table.from_arrays(table.columns, schema=schema)
    if plain.num_rows and plain.num_columns:
        order = pc.sort_indices(
            plain, sort_keys=[(name, "ascending", "at_end") for name in plain.column_names]
        )
        plain = plain.take(order)
    return plain.combine_chunks()


class _HashSink:
    """A write-only file object that feeds a hash, so a large table is hashed without a copy."""

    def __init__(self, digest: Hasher) -> None:
        self.digest = digest
        self.closed = False

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


def version_id_of(tables: Mapping[str, pa.Table], *, new_hash: Callable[[], Hasher] = hashlib.sha256) -> str:
    """SHA-256 (hex; ``new_hash``: the profile's hash, SM3 under ``gm``) of the canonical plaintext of
    ``tables`` (see the module docstring).

    >>> a = pa.table({"id": [2, 1, 3], "x": ["b", "a", "c"]})
    >>> b = pa.table({"id": [3, 1, 2], "x": ["c", "a", "b"]})
    >>> version_id_of({"t": a}) == version_id_of({"t": b})
    True
    >>> version_id_of({"t": a}) == version_id_of({"u": a})
    False
    """
    sink = _HashSink(new_hash())
    for name in sorted(tables):
        encoded = name.encode("utf-8")
        sink.write(b"table\x00" + len(encoded).to_bytes(8, "big") + encoded)
        canonical = _canonical(tables[name])
        with pa.ipc.new_stream(sink, canonical.schema) as writer:
            writer.write_table(canonical, max_chunksize=CANONICAL_BATCH_ROWS)
    return sink.digest.hexdigest()


def _check_name(kind: str, name: str) -> None:
    if not _SAFE_NAME.match(name) or name in {".", ".."}:
        raise StorageError(
            f"{kind} name {name!r} cannot be stored: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit, at most 128 characters"
        )


def _part_ids(table: pa.Table, *, unit: str, partition_key: bytes, n_parts: int) -> pa.Array:
    """The part index of every row, computed once per distinct unit (HMAC per unit, not per row)."""
    column = table.column(unit)
    distinct = pc.unique(column)
    place = partitioner(partition_key, n_parts)
    # str() of the Python value: an integer id hashes as its decimal form, as crypto asks.
    indices = pa.array([place(str(v)) for v in distinct.to_pylist()], pa.int32())
    return pc.take(indices, pc.index_in(column, value_set=distinct)).combine_chunks()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, compression=PARQUET_COMPRESSION)
    return bytes(buffer.getvalue().to_pybytes())


def write_version(
    root: Path,
    *,
    domain: str,
    dataset: str,
    version_id: str,
    tables: Mapping[str, pa.Table],
    units: Mapping[str, str],
    data_key: bytes,
    partition_key: bytes,
    n_parts: int,
) -> VersionLayout:
    """Encrypt ``tables`` into ``n_parts`` unit-partitioned parts each; returns where they went.

    ``version_id`` should be ``version_id_of(tables)`` (the caller computes it once; it is not
    recomputed here). The whole version directory appears atomically: parts are written into a
    staging directory that is renamed into place, and an existing version is never overwritten
    (its parts are sealed under a different data key).
    """
    for kind, name in (("domain", domain), ("dataset", dataset), ("version", version_id)):
        _check_name(kind, name)
    if n_parts < 1:
        raise StorageError(f"a version needs at least one part per table, got n_parts={n_parts}")
    if not tables:
        raise StorageError("a version needs at least one table")
    for table_name, table in tables.items():
        _check_name("table", table_name)
        unit = units.get(table_name)
        if unit is None:
            raise StorageError(f"table {table_name!r} has no declared privacy unit")
        if unit not in table.column_names:
            raise StorageError(f"privacy unit {unit!r} is not a column of table {table_name!r}")

    dataset_dir = Path(root) / domain / dataset
    final_dir = dataset_dir / version_id
    if final_dir.exists():
        raise StorageError(f"version {version_id} of {domain}/{dataset} is already stored")
    dataset_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dataset_dir, prefix=f".staging-{version_id[:16]}-"))
    try:
        parts: dict[str, tuple[PartRef, ...]] = {}
        for table_name in sorted(tables):
            parts[table_name] = _write_table(
                staging,
                final_dir,
                tables[table_name],
                unit=units[table_name],
                place=(domain, dataset, version_id, table_name),
                data_key=data_key,
                partition_key=partition_key,
                n_parts=n_parts,
            )
        try:
            staging.rename(final_dir)
        except OSError as exc:
            raise StorageError(f"version {version_id} of {domain}/{dataset} is already stored") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return VersionLayout(
        version_id=version_id,
        parts=parts,
        row_counts={name: tables[name].num_rows for name in sorted(tables)},
    )


def _write_table(
    staging: Path,
    final_dir: Path,
    table: pa.Table,
    *,
    unit: str,
    place: tuple[str, str, str, str],
    data_key: bytes,
    partition_key: bytes,
    n_parts: int,
) -> tuple[PartRef, ...]:
    domain, dataset, version_id, table_name = place
    table_dir = staging / table_name
    table_dir.mkdir()
    try:
        ids = _part_ids(table, unit=unit, partition_key=partition_key, n_parts=n_parts)
    except CryptoError as exc:
        raise StorageError(f"cannot partition table {table_name!r}: {exc.detail}") from exc
    order = pc.sort_indices(ids)
    grouped = table.take(order)
    counts = pc.value_counts(ids).to_pylist() if len(ids) else []
    per_part = dict.fromkeys(range(n_parts), 0)
    for item in counts:
        per_part[int(item["values"])] = int(item["counts"])
    refs: list[PartRef] = []
    offset = 0
    for index in range(n_parts):
        rows = grouped.slice(offset, per_part[index])
        offset += per_part[index]
        aad = part_aad(domain=domain, dataset=dataset, version_id=version_id, table=table_name, index=index)
        _write_atomic(table_dir / part_name(index), seal_data(data_key, parquet_bytes(rows), aad=aad))
        refs.append(PartRef(path=str(final_dir / table_name / part_name(index)), aad=aad))
    return tuple(refs)


def part_indices(table: TableInput) -> tuple[int, ...]:
    """The index in the version's layout of each part ``table`` lists."""
    if not table.part_indices:
        return tuple(range(len(table.parts)))
    if len(table.part_indices) != len(table.parts):
        raise PartIntegrityError(
            f"table {table.table!r} of {table.domain}/{table.dataset} lists {len(table.parts)} parts "
            f"but {len(table.part_indices)} part indices"
        )
    return table.part_indices


def expected_aads(table: TableInput) -> tuple[bytes, ...]:
    """The associated data each part of ``table`` must have been sealed with."""
    return tuple(
        part_aad(
            domain=table.domain,
            dataset=table.dataset,
            version_id=table.version_id,
            table=table.table,
            index=i,
        )
        for i in part_indices(table)
    )


def _where(table: TableInput, index: int) -> str:
    return (
        f"part {index} ({part_name(index)}) of table {table.table!r} in "
        f"{table.domain}/{table.dataset} version {table.version_id}"
    )


def _map(function: Callable[[_T], _R], items: Sequence[_T], *, threads: int) -> list[_R]:
    """``[function(i) for i in items]``, on up to ``threads`` threads: AES-GCM and Parquet decoding
    release the GIL, so parts decrypt and parse side by side."""
    workers = min(threads, len(items))
    if workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sbx-load") as pool:
        return list(pool.map(function, items))


def _unseal_part(table: TableInput, data_key: bytes, index: int, part: PartRef, expected: bytes) -> bytes:
    if part.aad != expected:
        raise PartIntegrityError(f"{_where(table, index)} is recorded with the wrong associated data")
    try:
        blob = _read_part(part)
    except OSError as exc:
        raise DataUnavailable(f"{_where(table, index)} cannot be read: {exc.strerror}") from exc
    try:
        return unseal_data(data_key, blob, aad=expected)
    except IntegrityError as exc:
        raise PartIntegrityError(
            f"{_where(table, index)} failed authentication: tampered, truncated, or moved from "
            "another version, table or dataset"
        ) from exc
    except CryptoError as exc:
        raise DataUnavailable(f"{_where(table, index)} cannot be decrypted: {exc.detail}") from exc


def _read_part(part: PartRef) -> bytes:
    """The sealed bytes of ``part``: from its file descriptor inside a sandbox, else from its path."""
    if part.fd is None:
        return Path(part.path).read_bytes()
    size = os.fstat(part.fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(part.fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def decrypt_parts(table: TableInput, data_key: bytes, *, threads: int = 1) -> list[bytes]:
    """Read and unseal every part of ``table`` (on up to ``threads`` threads): Parquet plaintext, in
    memory only, in part order.

    A part whose recorded associated data is not the one its position implies, or that fails
    authentication, raises :class:`PartIntegrityError` naming the part.
    """
    if not table.parts:
        raise DataUnavailable(f"table {table.table!r} of {table.domain}/{table.dataset} has no parts")
    places = list(zip(part_indices(table), table.parts, expected_aads(table), strict=True))
    if threads > 1 and _stored_bytes(table.parts) < PARALLEL_DECRYPT_MIN_BYTES:
        threads = 1
    return _map(lambda place: _unseal_part(table, data_key, *place), places, threads=threads)


def _stored_bytes(parts: Sequence[PartRef]) -> int:
    total = 0
    for part in parts:
        with contextlib.suppress(OSError):  # a missing part is reported, by name, when it is read
            total += os.fstat(part.fd).st_size if part.fd is not None else Path(part.path).stat().st_size
    return total


def _projection(schema: pa.Schema, columns: Collection[str] | None) -> list[str] | None:
    """The columns of ``schema`` named in ``columns`` (case-insensitively, as SQL names them), in
    schema order; at least one, so that the row count survives a query that names no column."""
    if columns is None:
        return None
    wanted = {name.lower() for name in columns}
    chosen = [name for name in schema.names if name.lower() in wanted]
    return chosen or schema.names[:1]


def _dictionary_columns(metadata: Iterable[pq.FileMetaData], candidates: Collection[str]) -> list[str]:
    """Which ``candidates`` are stored dictionary-encoded in every chunk of every part (see
    ``DICTIONARY_BYTES_PER_VALUE``)."""
    size = dict.fromkeys(candidates, 0)
    values = dict.fromkeys(candidates, 0)
    plain: set[str] = set()
    for meta in metadata:
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            for j in range(row_group.num_columns):
                chunk = row_group.column(j)
                name = chunk.path_in_schema
                if name not in size:
                    continue
                if not chunk.has_dictionary_page:
                    plain.add(name)
                size[name] += chunk.total_uncompressed_size
                values[name] += chunk.num_values
    return [
        name
        for name in candidates
        if name not in plain and values[name] and size[name] / values[name] < DICTIONARY_BYTES_PER_VALUE
    ]


def load_parts(
    plaintexts: Sequence[bytes],
    *,
    columns: Collection[str] | None = None,
    dictionaries: bool = False,
    threads: int = 1,
) -> pa.Table:
    """Parse decrypted Parquet parts and concatenate them into one table.

    ``columns`` limits what is parsed (see :class:`TableInput`; ``None``: every column).
    ``dictionaries`` reads low-cardinality string columns as Arrow dictionaries (for the SQL engine,
    which sees them as VARCHAR; not for pandas, where they would become categoricals). Parts parse
    on up to ``threads`` threads.
    """
    try:
        metadata = [pq.read_metadata(pa.BufferReader(data)) for data in plaintexts]
        schema = metadata[0].schema.to_arrow_schema()
        chosen = _projection(schema, columns)
        dictionary: list[str] = []
        if dictionaries:
            strings = [
                f.name
                for f in schema
                if (chosen is None or f.name in chosen)
                and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
            ]
            dictionary = _dictionary_columns(metadata, strings)
        tables = _map(
            lambda part: pq.ParquetFile(
                pa.BufferReader(part[0]), metadata=part[1], read_dictionary=dictionary or None
            ).read(columns=chosen),
            list(zip(plaintexts, metadata, strict=True)),
            threads=threads,
        )
    except (pa.ArrowException, OSError, IndexError) as exc:
        # Authenticated but unparseable: written by a key holder, not an attacker; no content in the text.
        raise DataUnavailable(f"a decrypted part is not valid Parquet ({type(exc).__name__})") from exc
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def read_table(table: TableInput, data_key: bytes) -> pa.Table:
    """Unseal and concatenate every part of ``table`` into one in-memory Arrow table."""
    return load_parts(decrypt_parts(table, data_key))
