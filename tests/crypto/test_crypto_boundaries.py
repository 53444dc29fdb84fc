"""Only ``crypto`` imports ``cryptography``, and ``crypto`` imports nothing of ours (docs/design.md §2)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUR_PACKAGES = ("policies", "executors", "sandbox_api")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_imported_modules_sees_both_import_forms(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import cryptography.x\nfrom policies.model import Scope\n")
    assert imported_modules(sample) == {"cryptography", "policies"}


@pytest.mark.parametrize("package", OUR_PACKAGES)
def test_other_packages_do_not_import_cryptography(package: str) -> None:
    offenders = [
        str(p.relative_to(REPO))
        for p in sorted((REPO / package).rglob("*.py"))
        if "cryptography" in imported_modules(p)
    ]
    assert offenders == []


def test_crypto_imports_no_other_package_of_ours() -> None:
    files = sorted((REPO / "crypto").glob("*.py"))
    assert files
    for path in files:
        assert imported_modules(path).isdisjoint(OUR_PACKAGES), path.name
