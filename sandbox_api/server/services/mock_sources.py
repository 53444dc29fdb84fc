"""Mock twins: what a mock-mode job runs on instead of a dataset version's real rows.

A twin is generated from the version's *declared* schema (column names, types, value domains) and a
seed derived from the version id and table name, never from the rows. It is generated on the fly
inside the job's sandbox rather than stored: generation is deterministic (same version, same twin,
byte for byte) and takes milliseconds at twin sizes, so a stored copy would add encrypted files,
keys and a shredding story without adding anything. Above all, a mock job is handed no data key and
no encrypted part at all, so even a job that escaped every guard could reach nothing real.

Twins have the version's declared row count, capped to keep development jobs quick.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from executors.python_job import MockSource
from policies import Catalog, TableRef

#: Rows of a twin: the version's row count, within these bounds.
MOCK_MAX_ROWS = 5_000
MOCK_MIN_ROWS = 100


def twin_seed(version_id: str, table: str) -> int:
    """The seed of a table's twin: stable per version and table, unrelated to any content.

    >>> twin_seed("abc", "citizens") == twin_seed("abc", "citizens") != twin_seed("abd", "citizens")
    True
    """
    digest = hashlib.sha256(f"mock-twin:{version_id}:{table}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def twin_rows(row_count: int | None) -> int:
    """How many rows a twin has.

    >>> twin_rows(None), twin_rows(12), twin_rows(1500), twin_rows(10**6)
    (1000, 100, 1500, 5000)
    """
    wanted = 1_000 if row_count is None else row_count
    return max(MOCK_MIN_ROWS, min(MOCK_MAX_ROWS, wanted))


def mock_sources(catalog: Catalog, tables: Iterable[TableRef]) -> tuple[MockSource, ...]:
    """One twin per table a job reads, from the catalog of the versions the job is pinned to."""
    sources = []
    for ref in tables:
        dataset = catalog.dataset(ref.dataset)
        schema = catalog.table(f"{ref.dataset}/{ref.table}")
        sources.append(
            MockSource(
                name=ref.sql_name,
                table=schema,
                n_rows=twin_rows(schema.row_count),
                seed=twin_seed(dataset.version_id, schema.name),
            )
        )
    return tuple(sources)
