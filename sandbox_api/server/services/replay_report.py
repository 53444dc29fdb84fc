"""What a replay answers: the outcome, every mismatch named by field, and which kind of mismatch it is.

Two kinds of mismatch call for different people, so every :class:`Mismatch` says which one it is:

* ``release-differs``: the evidence and the replay disagree about what was released. The receipt's
  signature fails, a stored record (result, query, scope document, data part) no longer matches what
  was signed, or the job, run again in the context it ran under, releases other bytes. Tampering or
  non-determinism: an incident.
* ``context-unavailable``: replay could not rebuild the context the job ran under (a scope version or
  dataset version it needs is not in the store, the recorded query does not pass the rebuilt context,
  the sandbox could not run it). Nothing is known about the release either way: a replay defect or a
  missing record, and the message says exactly what is missing.

A report with both kinds is ``release-differs``: an incident is never hidden behind a replay defect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox_api.server.services.keys import Shredded

MATCH, MISMATCH, DESTROYED, NOT_REPLAYABLE = "match", "mismatch", "data-destroyed", "not-replayable"
RELEASE_DIFFERS, CONTEXT_UNAVAILABLE = "release-differs", "context-unavailable"

# What each kind means for an auditor, as the report's message opens.
_HEADLINE = {
    RELEASE_DIFFERS: "the release differs from what replay computes (tampering or non-determinism: "
    "treat it as an incident)",
    CONTEXT_UNAVAILABLE: "replay could not rebuild the context the job ran under (a replay defect or a "
    "missing record, not evidence about the release)",
}


@dataclass(frozen=True)
class Mismatch:
    field: str
    expected: Any
    actual: Any
    message: str
    kind: str = RELEASE_DIFFERS  # release-differs | context-unavailable


def context_missing(field_name: str, message: str, *, expected: Any = None, actual: Any = None) -> Mismatch:
    """A mismatch of the second kind: replay could not rebuild part of the job's context."""
    return Mismatch(field_name, expected, actual, message, kind=CONTEXT_UNAVAILABLE)


def mismatch_kind(mismatches: Sequence[Mismatch]) -> str | None:
    """The report's kind: release-differs if any mismatch is, else context-unavailable, else None.

    >>> mismatch_kind([context_missing("scope.version_id", "gone"), Mismatch("result.hash", 1, 2, "x")])
    'release-differs'
    >>> mismatch_kind([context_missing("scope.version_id", "gone")]), mismatch_kind([])
    ('context-unavailable', None)
    """
    kinds = {m.kind for m in mismatches}
    if RELEASE_DIFFERS in kinds:
        return RELEASE_DIFFERS
    return CONTEXT_UNAVAILABLE if kinds else None


@dataclass(frozen=True)
class ReplayReport:
    job_id: str
    outcome: str  # match | mismatch | data-destroyed | not-replayable
    message: str
    receipt_kid: str
    expected_result_hash: str
    actual_result_hash: str | None
    mismatches: list[Mismatch] = field(default_factory=list)
    destroyed: list[Shredded] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    engine: dict[str, str] = field(default_factory=dict)
    replayed_at: str = ""
    replayed_by: str = ""
    kind: str | None = None  # of a mismatch: release-differs | context-unavailable

    @property
    def match(self) -> bool:
        return self.outcome == MATCH


@dataclass(frozen=True)
class ReportBase:
    """What every report of one replay shares; builds the report once the replay has ended."""

    job_id: str
    receipt_kid: str
    expected: str

    def report(
        self,
        outcome: str,
        message: str,
        *,
        mismatches: list[Mismatch],
        actual: str | None = None,
        destroyed: list[Shredded] | None = None,
        engine: dict[str, str] | None = None,
        notes: list[str] | None = None,
    ) -> ReplayReport:
        return ReplayReport(
            job_id=self.job_id,
            outcome=outcome,
            message=message,
            receipt_kid=self.receipt_kid,
            expected_result_hash=self.expected,
            actual_result_hash=actual,
            mismatches=mismatches,
            destroyed=destroyed or [],
            engine=engine or {},
            notes=notes or [],
            kind=mismatch_kind(mismatches),
        )

    def finish(
        self,
        mismatches: list[Mismatch],
        *,
        actual: str | None = None,
        engine: dict[str, str] | None = None,
        notes: list[str] | None = None,
    ) -> ReplayReport:
        """Match when nothing differs; otherwise the kind first, then every difference, named."""
        kind = mismatch_kind(mismatches)
        if kind is None:
            message = f"job {self.job_id} replayed to the same result hash {actual}"
            return self.report(MATCH, message, mismatches=[], actual=actual, engine=engine, notes=notes)
        parts = [
            f"{_HEADLINE[k]}: " + "; ".join(m.message for m in mismatches if m.kind == k)
            for k in (RELEASE_DIFFERS, CONTEXT_UNAVAILABLE)
            if any(m.kind == k for m in mismatches)
        ]
        message = f"job {self.job_id} does not replay to its receipt: " + "; also ".join(parts)
        return self.report(
            MISMATCH, message, mismatches=mismatches, actual=actual, engine=engine, notes=notes
        )


def compare_result(
    receipt: Mapping[str, Any],
    facts: Mapping[str, Any],
    *,
    report: Mapping[str, Any] | None,
) -> list[Mismatch]:
    """The replay's ``result`` facts (``receipt_format.result_facts``) and suppression report against
    the signed ones. ``report`` None: a release by output checkers, whose report is their decision
    (the bytes are still compared)."""
    signed = receipt.get("result") or {}
    found = []
    if facts["hash"] != signed.get("hash"):
        found.append(
            Mismatch(
                "result.hash",
                signed.get("hash"),
                facts["hash"],
                f"the replayed result hashes to {facts['hash']}, the receipt signed {signed.get('hash')}",
            )
        )
    if facts["row_count"] != signed.get("row_count"):
        found.append(
            Mismatch(
                "result.row_count",
                signed.get("row_count"),
                facts["row_count"],
                f"the replay released {facts['row_count']} rows, "
                f"the receipt signed {signed.get('row_count')}",
            )
        )
    # The bytes the operator received: the columns, every row, a Python job's output object. Rows are
    # compared as a multiset: without an ORDER BY the engine may group in another order each run, and
    # the order alone is not the release (``content_sha256`` binds it for the operator's own copy).
    exact = {
        "columns": (facts.get("columns"), signed.get("columns")),
        "row_digests": (sorted(facts.get("row_digests") or []), sorted(signed.get("row_digests") or [])),
        "output_sha256": (facts.get("output_sha256"), signed.get("output_sha256")),
    }
    for key, (actual, expected) in exact.items():
        if actual != expected:
            found.append(
                Mismatch(
                    f"result.{key}",
                    signed.get(key),
                    facts.get(key),
                    f"the replayed result's {key.replace('_', ' ')} differ from the signed ones"
                    if key == "row_digests"
                    else f"the replayed result's {key} differs from the signed one",
                )
            )
    signed_report = receipt.get("suppression")
    if report is not None and dict(report) != signed_report:
        changed = sorted(
            k for k in set(report) | set(signed_report or {}) if report.get(k) != (signed_report or {}).get(k)
        )
        found.append(
            Mismatch(
                "suppression",
                signed_report,
                dict(report),
                f"the suppression report differs in {', '.join(changed)}",
            )
        )
    return found


class ReplayStopped(Exception):
    """The replay cannot go on; the reason is already in the mismatches."""
