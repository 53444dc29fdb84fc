"""Data Sandbox policy engine: scopes, static analysis, rewrite passes and output checks (pure)."""

from policies.canonical import canonical_result, result_hash
from policies.catalog import Catalog, ColumnClass, ColumnSchema, DatasetSchema, TableSchema, ValueDomain
from policies.context import TableRef, check_scope
from policies.errors import OutputInvalid, PolicyError, PolicyViolation, ScopeInvalid, UnknownReference
from policies.findings import Finding
from policies.model import Disclosure, Scope, load_scope
from policies.output import ReleasedResult, SuppressionReport, check_output
from policies.pipeline import CheckReport, PreparedQuery, check, prepare

__all__ = [
    "Catalog",
    "CheckReport",
    "ColumnClass",
    "ColumnSchema",
    "DatasetSchema",
    "Disclosure",
    "Finding",
    "OutputInvalid",
    "PolicyError",
    "PolicyViolation",
    "PreparedQuery",
    "ReleasedResult",
    "Scope",
    "ScopeInvalid",
    "SuppressionReport",
    "TableRef",
    "TableSchema",
    "UnknownReference",
    "ValueDomain",
    "canonical_result",
    "check",
    "check_output",
    "check_scope",
    "load_scope",
    "prepare",
    "result_hash",
]
