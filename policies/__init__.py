"""Data Sandbox policy engine: scopes, static analysis, rewrite passes and output checks (pure)."""

from policies.canonical import canonical_result, result_hash
from policies.catalog import (
    Catalog,
    ColumnClass,
    ColumnSchema,
    DatasetSchema,
    TableSchema,
    ValueDomain,
    domain_of,
)
from policies.context import PolicyContext, TableRef, check_scope, compile_context
from policies.errors import OutputInvalid, PolicyError, PolicyViolation, ScopeInvalid, UnknownReference
from policies.findings import Finding
from policies.model import Disclosure, Scope, load_scope
from policies.output import ReleasedResult, SuppressionReport, check_output
from policies.pipeline import CheckReport, PreparedQuery, check, check_with, prepare, prepare_with

__all__ = [
    "Catalog",
    "CheckReport",
    "ColumnClass",
    "ColumnSchema",
    "DatasetSchema",
    "Disclosure",
    "Finding",
    "OutputInvalid",
    "PolicyContext",
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
    "check_with",
    "compile_context",
    "domain_of",
    "load_scope",
    "prepare",
    "prepare_with",
    "result_hash",
]
