"""Automatic disclosure report for outputs an output checker must review.

The rules are the standard ones of statistical disclosure control (Hundepool et al., *Statistical
Disclosure Control*, Wiley 2012, §4.2: minimum frequency, dominance (n, k) and p% rules; §6 and the
SDAP/ONS output-checking guidance for residual degrees of freedom of models). The report never
decides: it lists findings a person can act on. It quotes no data values, only where they are.

Besides the scan of a finished output here, the runtime adds findings while the job runs, where the
rows and their units are still known (``tracking``/``methods``): ``min-units`` for every value
computed from fewer than ``min_units`` units (a reduction, a groupby's small groups, a numpy or
statistics function over data), ``extreme-value`` for a maximum, minimum or similar (one unit's own
value), and ``row-dependence`` for an ``aggregate()`` column that depends on other rows.

Why not ACRO (the SACRO project's statistical output checker, ``acro`` 1.0.2 on PyPI): its rules are
the ones used here (threshold, (n, k) dominance, p-ratio, residual degrees of freedom; its defaults
are k=0.90 and p=10 %, ours 0.85 and 10 %), but as a dependency it does not fit. It pins
``pandas<=2.3.3`` (this service runs pandas 3), pulls in matplotlib, statsmodels, rdflib, lxml and
openpyxl, and it checks tables by wrapping the calls that build them (``acro.crosstab``,
``acro.pivot_table``, ``acro.ols``) in a session that writes its outputs to files, rather than by
checking a table or values it is handed. Our jobs build their tables with ``aggregate()`` and pandas
under the sandbox's guards, so the rules (``policies/cell_rules.py``, one definition for SQL and
Python results) are applied here on the per-unit contributions the helper and the runtime already
have.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

Severity = Literal["flag", "note"]

_COUNT_NAME = re.compile(
    r"(^|_)(n|count|counts|freq|frequency|size|num|number|units|people|persons|cases)($|_)", re.I
)
_IDENTIFIER_PATTERNS: Mapping[str, re.Pattern[str]] = {
    "a long hexadecimal token": re.compile(r"\b[0-9a-fA-F]{16,}\b"),
    "a UUID": re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
    "an e-mail address": re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"),
    "a long digit sequence (phone or ID number)": re.compile(r"\d{9,}"),
}


class Pseudonyms(Protocol):
    def count_matches(self, candidates: Collection[str]) -> int: ...


@dataclass(frozen=True)
class DisclosureThresholds:
    """Thresholds of the automatic checks; ``min_units`` comes from the scope's disclosure settings."""

    min_units: int = 10
    dominance_n: int = 2
    dominance_k: float = 0.85
    p_percent: float = 10.0
    min_residual_df: int = 10


@dataclass(frozen=True)
class DisclosureFinding:
    # min-count | dominance | p-ratio | residual-df | identifier | distinct-values | row-level | not-assessed
    rule: str
    severity: Severity
    message: str
    where: str = ""


@dataclass(frozen=True)
class DisclosureReport:
    findings: tuple[DisclosureFinding, ...] = ()

    @property
    def flagged(self) -> bool:
        """True when at least one finding is a flag (a note only informs)."""
        return any(f.severity == "flag" for f in self.findings)

    def to_dict(self) -> dict[str, object]:
        return {"flagged": self.flagged, "findings": [asdict(f) for f in self.findings]}

    def merged(self, other: DisclosureReport) -> DisclosureReport:
        return DisclosureReport(self.findings + other.findings)


def model_findings(
    fits: Iterable[tuple[str, int, int]], thresholds: DisclosureThresholds
) -> Iterator[DisclosureFinding]:
    """One finding per fitted model: a flag when the residual degrees of freedom are too few."""
    for i, (function, n_obs, n_params) in enumerate(fits, start=1):
        df = n_obs - n_params
        where = f"model fit #{i} ({function})"
        if df < thresholds.min_residual_df:
            yield DisclosureFinding(
                "residual-df",
                "flag",
                f"{df} residual degrees of freedom (fewer than {thresholds.min_residual_df}): "
                "the fit may reproduce individual observations",
                where,
            )
        else:
            yield DisclosureFinding("residual-df", "note", f"{df} residual degrees of freedom", where)


def scan_plain(
    node: object,
    *,
    pseudonyms: Pseudonyms,
    thresholds: DisclosureThresholds,
    input_rows: Sequence[int] = (),
    where: str = "result",
) -> Iterator[DisclosureFinding]:
    """Scan a plain-data output (see ``summary.to_plain``) for small counts and identifier-like values."""
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "table":
            yield from _scan_table(
                node, pseudonyms=pseudonyms, thresholds=thresholds, input_rows=input_rows, where=where
            )
            return
        if kind == "value":
            yield from scan_text(_text(node.get("value")), pseudonyms=pseudonyms, where=where)
            return
        if kind == "array":
            yield from _scan_strings(_flatten(node.get("values")), pseudonyms=pseudonyms, where=where)
            return
        items = node.get("items")
        if isinstance(items, list):
            for i, item in enumerate(items):
                if kind == "dict" and isinstance(item, list) and len(item) == 2:
                    yield from scan_text(str(item[0]), pseudonyms=pseudonyms, where=f"{where} key {i}")
                    yield from scan_plain(
                        item[1],
                        pseudonyms=pseudonyms,
                        thresholds=thresholds,
                        input_rows=input_rows,
                        where=f"{where}[{item[0]!s}]"[:200],
                    )
                else:
                    yield from scan_plain(
                        item,
                        pseudonyms=pseudonyms,
                        thresholds=thresholds,
                        input_rows=input_rows,
                        where=f"{where}[{i}]",
                    )


def scan_text(text: str, *, pseudonyms: Pseudonyms, where: str) -> Iterator[DisclosureFinding]:
    """Identifier-like content in free text (printed output, strings)."""
    if not text:
        return
    tokens = set(re.findall(r"[\w-]+", text))
    hits = pseudonyms.count_matches(tokens)
    if hits:
        yield DisclosureFinding(
            "identifier", "flag", f"{hits} value(s) equal unit pseudonyms of this job", where
        )
    for label, pattern in _IDENTIFIER_PATTERNS.items():
        found = len(pattern.findall(text))
        if found:
            yield DisclosureFinding("identifier", "flag", f"{found} value(s) look like {label}", where)


def _scan_strings(
    values: Iterable[object], *, pseudonyms: Pseudonyms, where: str
) -> Iterator[DisclosureFinding]:
    strings = [v for v in values if isinstance(v, str)]
    if strings:
        yield from scan_text("\n".join(strings), pseudonyms=pseudonyms, where=where)


def _scan_table(
    node: Mapping[str, object],
    *,
    pseudonyms: Pseudonyms,
    thresholds: DisclosureThresholds,
    input_rows: Sequence[int],
    where: str,
) -> Iterator[DisclosureFinding]:
    columns = [str(c) for c in node.get("columns", [])]  # type: ignore[attr-defined]
    rows: list[list[object]] = list(node.get("rows", []))  # type: ignore[call-overload]
    n_rows = len(rows)
    if n_rows and n_rows in set(input_rows):
        yield DisclosureFinding(
            "row-level",
            "flag",
            f"the table has as many rows ({n_rows}) as an input table: it may be row-level",
            where,
        )
    by_column = [[row[i] for row in rows] for i in range(len(columns))]
    int_columns = [i for i, values in enumerate(by_column) if _is_count_like(values)]
    numeric_columns = [i for i, values in enumerate(by_column) if _is_numeric(values)]
    crosstab = bool(numeric_columns) and set(numeric_columns) <= set(int_columns)
    for i, name in enumerate(columns):
        values = by_column[i]
        place = f"{where}, column {name!r}"
        if i in int_columns and (crosstab or _COUNT_NAME.search(name)):
            small = [r for r, v in enumerate(values) if isinstance(v, int) and 0 < v < thresholds.min_units]
            if small:
                shown = ", ".join(str(r) for r in small[:10]) + (" …" if len(small) > 10 else "")
                yield DisclosureFinding(
                    "min-count",
                    "flag",
                    f"{len(small)} count cell(s) below {thresholds.min_units} (rows {shown})",
                    place,
                )
        strings = [v for v in values if isinstance(v, str)]
        if strings and len(strings) >= thresholds.min_units and len(set(strings)) == len(strings):
            yield DisclosureFinding(
                "distinct-values",
                "flag",
                "every value is distinct: the column looks like an identifier",
                place,
            )
        yield from _scan_strings(values, pseudonyms=pseudonyms, where=place)


def _is_count_like(values: list[object]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in present)


def _is_numeric(values: list[object]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)


def _flatten(values: object) -> Iterator[object]:
    if isinstance(values, list):
        for v in values:
            yield from _flatten(v)
    else:
        yield values


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
