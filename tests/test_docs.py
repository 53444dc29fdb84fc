"""Every rewrite pass and every check is named in the README, with its place in the pipeline."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

import policies.checks
import policies.dp.passes
import policies.passes

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _modules(package: object) -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name",
    _modules(policies.passes) + _modules(policies.dp.passes) + _modules(policies.checks) + ["dp_query_shape"],
)
def test_every_pass_and_check_is_documented(name: str) -> None:
    assert f"`{name}`" in README, f"README.md does not describe {name}; add it to 'How it works'"
