"""Mock twins: what a mock-mode job runs on instead of a dataset version's real rows.

A twin is generated from the version's *declared* schema (column names, types, value domains) and a
seed derived from the version id and table name, never from the rows. It is generated on the fly
inside the job's sandbox rather than stored: generation is deterministic (same version, same twin,
byte for byte) and takes milliseconds at twin sizes, so a stored copy would add encrypted files,
keys and a shredding story without adding anything. Above all, a mock job is handed no data key and
no encrypted part at all, so even a job that escaped every guard could reach nothing real.

Every twin has the same number of rows, whatever the real table holds: its exact row count is a total
of everyone that no released-cohort ledger records (an operator subtracting a released count from it
would learn whether one person's cell is empty), so neither the catalog nor a twin's size shows it to
operators.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from executors.python_job import MockSource
from policies import Catalog, TableRef

#: Rows of every twin (never the real table's count: see above).
MOCK_ROWS = 1_000
#: Legacy (replay only): twins had the version's row count within these bounds (``legacy_twin_rows``).
LEGACY_MOCK_MAX_ROWS = 5_000
LEGACY_MOCK_MIN_ROWS = 100


def twin_seed(version_id: str, table: str) -> int:
    """The seed of a table's twin: stable per version and table, unrelated to any content.

    >>> twin_seed("abc", "citizens") == twin_seed("abc", "citizens") != twin_seed("abd", "citizens")
    True
    """
    digest = hashlib.sha256(f"mock-twin:{version_id}:{table}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def legacy_twin_rows(row_count: int | None) -> int:
    """Legacy (replay only): a twin's rows as mock jobs released before every twin had
    :data:`MOCK_ROWS`: its table's row count, within bounds. A replay of such a job must rebuild the
    twins it ran on, or it computes another result; never used for a job run now.

    >>> legacy_twin_rows(None), legacy_twin_rows(12), legacy_twin_rows(1500), legacy_twin_rows(10**6)
    (1000, 100, 1500, 5000)
    """
    wanted = MOCK_ROWS if row_count is None else row_count
    return max(LEGACY_MOCK_MIN_ROWS, min(LEGACY_MOCK_MAX_ROWS, wanted))


def mock_sources(
    catalog: Catalog, tables: Iterable[TableRef], *, legacy_twin_size: bool = False
) -> tuple[MockSource, ...]:
    """One twin per table a job reads, from the catalog of the versions the job is pinned to
    (``legacy_twin_size``: only to replay a job released before, ``legacy_twin_rows``)."""
    sources = []
    for ref in tables:
        dataset = catalog.dataset(ref.dataset)
        schema = catalog.table(f"{ref.dataset}/{ref.table}")
        sources.append(
            MockSource(
                name=ref.sql_name,
                table=schema,
                n_rows=legacy_twin_rows(schema.row_count) if legacy_twin_size else MOCK_ROWS,
                seed=twin_seed(dataset.version_id, schema.name),
            )
        )
    return tuple(sources)
