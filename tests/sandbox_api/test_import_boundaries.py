"""Imports flow one way (docs/design.md §2, docs/internals.md): a static walk of every module's imports.

The rooms of ``sandbox_api`` match who uses them: the server never imports the client or the CLI (so
the offline verifier an auditor runs is not the code that signs), the client never imports the server
or the CLI (so it installs without FastAPI, DuckDB or Ray), and the shared modules beside them import
neither room. Below ``sandbox_api``, ``executors → policies, crypto`` and nothing imports back up.

Parsing, not importing: the walk is fast, sees imports inside functions (the CLI's lazy ones) too,
and cannot be fooled by a module that is already loaded.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("crypto", "policies", "executors", "sandbox_api")
ROOMS = ("sandbox_api.server", "sandbox_api.client", "sandbox_api.cli")

# (modules under this prefix, may not import anything under these prefixes)
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("crypto", ("policies", "executors", "sandbox_api")),
    ("policies", ("executors", "sandbox_api")),
    ("executors", ("sandbox_api",)),
    ("sandbox_api.server", ("sandbox_api.client", "sandbox_api.cli")),
    ("sandbox_api.client", ("sandbox_api.server", "sandbox_api.cli")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(source: str, *, module: str, is_package: bool = False) -> set[str]:
    """Every module ``source`` imports, absolute; ``from a import b`` gives both ``a`` and ``a.b``
    (``b`` may be a submodule). Relative imports are resolved against ``module``.

    >>> sorted(imported_names("from . import verify\\nimport json", module="sandbox_api.client.cli_x"))
    ['json', 'sandbox_api.client', 'sandbox_api.client.verify']
    """
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _modules() -> Iterator[tuple[str, set[str]]]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = module_name(path)
            source = path.read_text(encoding="utf-8")
            yield name, imported_names(source, module=name, is_package=path.name == "__init__.py")


MODULES = dict(_modules())


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_walk_sees_every_import_form() -> None:
    source = (
        "import sandbox_api.client.verify as v\n"
        "from sandbox_api import cli\n"
        "from ..client import api_client\n"
        "def lazy():\n    from sandbox_api.server.app import create_app\n"
    )
    seen = imported_names(source, module="sandbox_api.server.routes")
    assert {"sandbox_api.client.verify", "sandbox_api.cli", "sandbox_api.client.api_client"} <= seen
    assert "sandbox_api.server.app" in seen


def test_the_walk_found_every_package() -> None:
    for package in PACKAGES:
        assert any(_under(name, package) for name in MODULES), package
    for room in ROOMS:
        assert any(_under(name, room) for name in MODULES), room


@pytest.mark.parametrize(("owner", "forbidden"), RULES, ids=[owner for owner, _ in RULES])
def test_imports_flow_one_way(owner: str, forbidden: tuple[str, ...]) -> None:
    offenders = sorted(
        f"{name} imports {target}"
        for name, targets in MODULES.items()
        if _under(name, owner)
        for target in targets
        if any(_under(target, prefix) for prefix in forbidden)
    )
    assert offenders == []


def test_the_shared_modules_beside_the_rooms_import_none_of_them() -> None:
    shared = [n for n in MODULES if _under(n, "sandbox_api") and not any(_under(n, r) for r in ROOMS)]
    assert "sandbox_api.receipt_format" in shared
    offenders = sorted(
        f"{name} imports {target}"
        for name in shared
        for target in MODULES[name]
        if any(_under(target, room) for room in ROOMS)
    )
    assert offenders == []


# The base distribution (client and verifier) installs without these (pyproject.toml's extras).
SERVER_LIBRARIES = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "duckdb",
    "ray",
    "uvicorn",
    "sqlglot",
    "opendp",
)


def test_the_client_room_imports_no_library_of_the_server() -> None:
    offenders = sorted(
        f"{name} imports {target}"
        for name, targets in MODULES.items()
        if _under(name, "sandbox_api.client")
        for target in targets
        if any(_under(target, library) for library in (*SERVER_LIBRARIES, "executors"))
    )
    assert offenders == []


def test_only_the_ray_backend_imports_ray() -> None:
    importers = sorted(name for name, targets in MODULES.items() if any(_under(t, "ray") for t in targets))
    assert importers == ["executors.ray_executor"]
