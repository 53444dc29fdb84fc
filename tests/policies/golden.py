"""Golden files: ``-- case:`` starts a case; ``-- expect:`` precedes the expected SQL; ``-- expect-error:``
lists the rule ids that must be reported. One file per rewrite pass (the pass is applied alone to the
qualified tree) and ``checks.sql`` for the static checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "policies"


@dataclass(frozen=True)
class GoldenCase:
    file: str
    title: str
    sql: str
    expected: str | None
    expect_error: frozenset[str]

    @property
    def id(self) -> str:
        return f"{self.file}:{self.title}"


def load_cases(path: Path) -> list[GoldenCase]:
    cases: list[GoldenCase] = []
    title: str | None = None
    sql: list[str] = []
    expected: list[str] | None = None
    errors: frozenset[str] = frozenset()

    def flush() -> None:
        if title is not None:
            cases.append(
                GoldenCase(
                    path.stem,
                    title,
                    "\n".join(sql).strip(),
                    "\n".join(expected).strip() if expected is not None else None,
                    errors,
                )
            )

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("-- case:"):
            flush()
            title, sql, expected, errors = line.removeprefix("-- case:").strip(), [], None, frozenset()
        elif line.startswith("-- expect-error:"):
            errors = frozenset(r.strip() for r in line.removeprefix("-- expect-error:").split(","))
        elif line.startswith("-- expect:"):
            expected = []
        elif expected is not None:
            expected.append(line)
        else:
            sql.append(line)
    flush()
    return cases
