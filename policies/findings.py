"""The unit of every policy decision: a rule id, a message a person can act on, the SQL fragment."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Finding:
    """One reason a query or scope is refused.

    ``rule`` is a stable id (tests and clients match on it), ``message`` says what was wrong and what
    would be allowed instead, ``fragment`` is the offending SQL (or the scope field).

    >>> Finding("column_denied", "column 'name' may not be used", "name").rule
    'column_denied'
    """

    rule: str
    message: str
    fragment: str = ""

    def to_dict(self) -> dict[str, str]:
        """Plain-dict form for JSON bodies."""
        return asdict(self)
