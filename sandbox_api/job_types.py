"""The kind of a job (what the operator wrote) and its mode (which data it runs on).

Both are string enums: they travel as ``"sql"``/``"python"`` and ``"real"``/``"mock"`` in the API and
are stored as those same strings, so a job stored before the enums reads back unchanged.

>>> Kind("python") is Kind.PYTHON, Mode.MOCK == "mock", f"{Kind.SQL}"
(True, True, 'sql')
"""

from __future__ import annotations

import enum


class Kind(enum.StrEnum):
    SQL = "sql"
    PYTHON = "python"
    #: SQL joining datasets of two domains, run as a private join: each domain computes on its own
    #: rows in its own sandboxes, and only protocol messages and released cells cross (docs/cross-domain.md).
    CROSS_DOMAIN = "cross-domain"


class Mode(enum.StrEnum):
    REAL = "real"
    MOCK = "mock"  # on the datasets' mock twins: synthetic rows generated from the declared schema
