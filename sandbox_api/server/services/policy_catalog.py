"""The policies' view of the catalog, built from the stored versions (schemas only, never rows)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

from policies import PolicyContext, Scope, compile_context
from policies.catalog import Catalog, ColumnSchema, DatasetSchema, TableSchema, ValueDomain
from sandbox_api.server.services.catalog import VersionView


def build_catalog(versions: Mapping[str, VersionView]) -> Catalog:
    """``versions`` maps ``"domain/dataset"`` to the version new jobs read."""
    datasets = []
    for ref, version in sorted(versions.items()):
        domain, name = ref.split("/", 1)
        tables = tuple(
            TableSchema(
                name=table["name"],
                unit=table["unit"],
                row_count=table.get("row_count"),
                # The steward's declaration (checked at upload), and the fact measured at upload (the
                # version is immutable, so it holds): see policies.catalog.TableSchema.
                one_row_per_unit=bool(table.get("one_row_per_unit")),
                unique_units=bool(table.get("unique_units")),
                level=table.get("level"),
                columns=tuple(
                    ColumnSchema(
                        name=column["name"],
                        type=column["type"],
                        cls=column["class"],
                        domain=None if column.get("domain") is None else ValueDomain(**column["domain"]),
                    )
                    for column in table["columns"]
                ),
            )
            for table in version.tables
        )
        datasets.append(DatasetSchema(domain=domain, name=name, version_id=version.version_id, tables=tables))
    return Catalog(datasets=tuple(datasets))


def scope_dataset_refs(scope: Scope) -> list[str]:
    """``"domain/dataset"`` of every dataset ``scope`` names, sorted (a table grant names its dataset).

    >>> from policies.examples import example_scope
    >>> scope_dataset_refs(example_scope())
    ['health-bureau/citizens']
    """
    return sorted({"/".join(key.split("/")[:2]) for key in scope.datasets})


def scope_catalog_versions(scope: Scope, versions: Mapping[str, str]) -> dict[str, str]:
    """``{"domain/dataset": version id}`` for every dataset ``scope`` names that ``versions`` holds.

    ``versions`` maps every dataset to the version a job was checked against. The answer is the part
    of the catalog that the job's policy context was built from, whether the job read the dataset or
    not: what a replay needs to rebuild that context (a table grant names its dataset).

    >>> from policies.examples import example_scope
    >>> scope_catalog_versions(example_scope(), {"health-bureau/citizens": "v1", "other/data": "v9"})
    {'health-bureau/citizens': 'v1'}
    """
    return {ref: versions[ref] for ref in scope_dataset_refs(scope) if ref in versions}


class PolicyContexts:
    """Compiled policy contexts, keyed by scope version and the dataset versions they were built on.

    Versions are immutable, so a context never goes stale: a new scope or dataset version is a new key.
    Bounded (least recently used out) and owned by one service instance; never module-level.
    """

    def __init__(self, *, size: int = 64) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], PolicyContext] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, scope: Scope, versions: Mapping[str, VersionView]) -> PolicyContext:
        key = (scope.version_id, tuple(sorted((ref, v.version_id) for ref, v in versions.items())))
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        ctx = compile_context(scope, build_catalog(versions))  # outside the lock: ~0.2 ms of pure work
        with self._lock:
            self._items[key] = ctx
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return ctx
