"""A scope lineage: the ledger's unit of memory.

A lineage is the scope's *name* and the sorted set of datasets it names (``domain/dataset``), not a
scope version: a new version (another threshold, more columns, other grantees) and a revocation
followed by a re-issue keep the name and the datasets, so they keep the ledger, and what was released
under one version still constrains the next. Grantees are not part of it: every grantee of the scope
reads from the same ledger, so two operators cannot split a differencing attack between them. Naming
another dataset set starts another lineage, because cohorts over other data are not comparable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from policies.model import Scope


@dataclass(frozen=True)
class Lineage:
    scope: str
    datasets: tuple[str, ...]

    @property
    def id(self) -> str:
        """SHA-256 of the canonical JSON of name and datasets: stable, and the same in every process.

        >>> Lineage("flu", ("b/x", "a/y")).id == lineage("flu", ["a/y", "b/x"]).id
        True
        """
        body = json.dumps({"datasets": sorted(self.datasets), "scope": self.scope}, separators=(",", ":"))
        return hashlib.sha256(body.encode("utf-8")).hexdigest()


def lineage(scope: str, datasets: Iterable[str]) -> Lineage:
    """The lineage of a scope name over ``datasets`` (order and repeats do not matter).

    >>> lineage("flu", ["b/x", "a/y", "a/y"])
    Lineage(scope='flu', datasets=('a/y', 'b/x'))
    """
    return Lineage(scope=scope, datasets=tuple(sorted(set(datasets))))


def lineage_of(scope: Scope) -> Lineage:
    """The lineage of a scope version.

    >>> from policies.examples import example_scope
    >>> lineage_of(example_scope())
    Lineage(scope='flu-study-2026', datasets=('health-bureau/citizens',))
    """
    return lineage(scope.name, scope.datasets)
