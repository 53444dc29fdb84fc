"""A lineage: the ledger's unit of memory.

A lineage is identified by the sorted set of datasets a scope names (``domain/dataset``), not by the
scope's name nor its version: a new version (another threshold, more columns, other grantees), a
revocation followed by a re-issue, and *another scope over the same datasets* all share one ledger, so
what was released under one still constrains the others (a second scope with a fresh name must not
start with an empty memory). Grantees are not part of it either: two operators cannot split a
differencing attack between them. A scope that names another set of datasets has another lineage (the
limit: docs/disclosure.md). The scope's name is kept for messages only.
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
        """SHA-256 of the canonical JSON of the datasets: stable, the same in every process, and the same
        for every scope over those datasets.

        >>> Lineage("flu", ("b/x", "a/y")).id == lineage("another-study", ["a/y", "b/x"]).id
        True
        >>> Lineage("flu", ("a/y",)).id == lineage("flu", ["a/y", "b/x"]).id
        False
        """
        body = json.dumps({"datasets": sorted(self.datasets)}, separators=(",", ":"))
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
