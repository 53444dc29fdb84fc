"""What a withheld job produced, as plain data: sealed for output checkers, released on their decision."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crypto.hashing import canonical_json, sha256_hex


@dataclass(frozen=True)
class WithheldPayload:
    """What a withheld job produced, as plain data."""

    table: dict[str, Any] | None  # {columns, rows, types?}: a table the operator receives on release
    summary: Any  # plain-data summary of a non-table result (``executors.pyjobs.summary``)
    printed: str | None
    report: dict[str, Any]  # automatic disclosure report {flagged, findings: [{rule, severity, ...}]}
    result_hash: str
    engine: dict[str, str] = field(default_factory=dict)  # versions of what computed it (for receipts)

    @classmethod
    def build(
        cls,
        *,
        table: dict[str, Any] | None,
        summary: Any,
        printed: str | None,
        report: dict[str, Any],
        table_hash: str | None = None,
        engine: Mapping[str, str] | None = None,
    ) -> WithheldPayload:
        """``table_hash``: ``policies.result_hash`` of a checked table; otherwise a hash of the content."""
        content = {"table": table, "summary": summary, "printed": printed}
        digest = (
            table_hash if table_hash is not None and printed is None else sha256_hex(canonical_json(content))
        )
        return cls(
            table=table,
            summary=summary,
            printed=printed,
            report=report,
            result_hash=digest,
            engine=dict(engine or {}),
        )

    def columns_rows(self) -> tuple[list[str], list[list[Any]]]:
        if self.table is None:
            return [], []
        return [str(c) for c in self.table["columns"]], [list(r) for r in self.table["rows"]]

    def column_types(self) -> list[str] | None:
        """The table's column types (``result_json``), if it was stored with them."""
        if self.table is None or self.table.get("types") is None:
            return None
        return [str(t) for t in self.table["types"]]

    def released_output(self) -> dict[str, Any]:
        return {"summary": self.summary, "printed": self.printed, "report": self.report}

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "table": self.table,
                "summary": self.summary,
                "printed": self.printed,
                "report": self.report,
                "result_hash": self.result_hash,
                "engine": self.engine,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> WithheldPayload:
        data = json.loads(raw)
        return cls(
            table=data["table"],
            summary=data["summary"],
            printed=data["printed"],
            report=data["report"],
            result_hash=data["result_hash"],
            engine=dict(data.get("engine") or {}),
        )
