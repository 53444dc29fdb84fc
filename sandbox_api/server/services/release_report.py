"""The operator's report of a released result: one type for every way a result is released.

A released result comes with a report the operator reads and the receipt signs. It was three dict
shapes (the output check of a SQL or ``aggregate()`` table, a Python or mock output released without
the check, a result released by output checkers); :class:`ReleaseReport` is the one typed form, and
:meth:`ReleaseReport.to_dict` writes exactly the members each shape had, so stored reports and signed
receipts do not change. The counts of rows below ``min_units`` are never in it: they are for auditors
(``SuppressionReport.audit_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policies.output import SuppressionReport


@dataclass(frozen=True)
class ReleaseReport:
    """``rows_released`` and ``reasons`` always; the rest only where the release path says it.

    * output check (SQL results, clean ``aggregate()`` tables): ``cells_rounded``, ``rows_capped``,
      ``min_units``, ``mock``, ``remainder``;
    * released without the output check (mock data, or a Python output that checkers released on
      mock data): ``rows_in`` and ``mock``;
    * released by output checkers: ``rows_in`` and ``reviewed_by``.
    """

    rows_released: int
    reasons: tuple[str, ...]
    rows_in: int | None = None
    cells_rounded: int | None = None
    rows_capped: int | None = None
    min_units: int | None = None
    mock: bool | None = None
    remainder: bool | None = None
    reviewed_by: tuple[str, ...] | None = None
    #: Rows the released-cohort ledger withheld (their reasons are among ``reasons``).
    rows_withheld_by_ledger: int | None = None
    #: Differential privacy (SQL under a DP scope): epsilon, delta, mechanism, and per column its mechanism.
    differential_privacy: dict[str, Any] | None = None

    @classmethod
    def checked(cls, report: SuppressionReport) -> ReleaseReport:
        """The output check's report, as the operator sees it (the reasons say what applied).

        >>> r = ReleaseReport.checked(SuppressionReport(rows_in=5, rows_released=3, rows_dropped=2,
        ...                                             min_units=10))
        >>> list(r.to_dict())
        ['rows_released', 'cells_rounded', 'rows_capped', 'min_units', 'mock', 'remainder', 'reasons']
        """
        shown: dict[str, Any] = report.to_dict()
        return cls(
            rows_released=int(shown["rows_released"]),
            reasons=tuple(str(r) for r in shown["reasons"]),
            cells_rounded=int(shown["cells_rounded"]),
            rows_capped=int(shown["rows_capped"]),
            min_units=int(shown["min_units"]),
            mock=bool(shown["mock"]),
            remainder=bool(shown["remainder"]),
        )

    @classmethod
    def unchecked(cls, rows: int, *, mock: bool, reasons: tuple[str, ...]) -> ReleaseReport:
        """A Python or mock output whose table is released as it is (``rows`` in, ``rows`` out).

        >>> ReleaseReport.unchecked(4, mock=True, reasons=("mock data",)).to_dict()
        {'rows_in': 4, 'rows_released': 4, 'mock': True, 'reasons': ['mock data']}
        """
        return cls(rows_released=rows, reasons=reasons, rows_in=rows, mock=mock)

    @classmethod
    def reviewed(cls, rows: int, *, checkers: tuple[str, ...]) -> ReleaseReport:
        """A withheld output that ``checkers`` released.

        >>> ReleaseReport.reviewed(2, checkers=("chad", "cora")).to_dict()["reasons"]
        ['released by output checker(s) chad, cora after review']
        """
        return cls(
            rows_released=rows,
            reasons=(f"released by output checker(s) {', '.join(checkers)} after review",),
            rows_in=rows,
            reviewed_by=checkers,
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored and signed form: the members this release path reports, in a fixed order."""
        members: dict[str, Any] = {
            "rows_in": self.rows_in,
            "rows_released": self.rows_released,
            "cells_rounded": self.cells_rounded,
            "rows_capped": self.rows_capped,
            "min_units": self.min_units,
            "mock": self.mock,
            "remainder": self.remainder,
            "reviewed_by": None if self.reviewed_by is None else list(self.reviewed_by),
            "rows_withheld_by_ledger": self.rows_withheld_by_ledger,
            "differential_privacy": self.differential_privacy,
            "reasons": list(self.reasons),
        }
        return {k: v for k, v in members.items() if v is not None}
