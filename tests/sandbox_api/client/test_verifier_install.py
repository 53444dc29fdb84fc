"""An auditor installs the base distribution (no FastAPI, DuckDB or Ray) and verifies offline.

The test builds the project from a copy of its packages into a fresh virtual environment, with the
lock file's versions, and checks there that the server's libraries are absent and that a receipt, its
result and an audit bundle from a real deployment verify, and that an edited result does not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.sandbox_api.api_helpers import World, world
from tests.sandbox_api.auditing_helpers import receipt_of, release, result_of

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("crypto", "policies", "executors", "sandbox_api")
SERVER_ONLY = ("fastapi", "duckdb", "ray", "sqlalchemy", "uvicorn", "sqlglot", "opendp")

VERIFY = """
import json, sys
from pathlib import Path
from crypto.errors import IntegrityError
from sandbox_api.client.verify import parse_keys, verify_bundle, verify_receipt

folder = Path(sys.argv[1])
keys = parse_keys(json.loads((folder / "keys.json").read_text()))
receipt = json.loads((folder / "receipt.json").read_text())
result = json.loads((folder / "result.json").read_text())
report = verify_receipt(receipt, keys, result=result)
bundle = verify_bundle(json.loads((folder / "bundle.json").read_text()), trusted_keys=keys)
result["rows"] = result["rows"][1:]
try:
    verify_receipt(receipt, keys, result=result)
except IntegrityError as refused:
    edited = str(refused)
else:
    edited = "accepted"
print(json.dumps({"job": report.job_id, "events": bundle.count, "edited": edited}))
"""


def _copy_project(target: Path) -> Path:
    """The files a build needs, without the repository's virtual environment or caches."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A released job's receipt and result, the published keys and an audit bundle, as files."""
    folder = tmp_path_factory.mktemp("evidence")
    api: World
    with world(tmp_path_factory.mktemp("state")) as api:
        job = release(api)
        files = {
            "receipt.json": receipt_of(api, job),
            "result.json": result_of(api, job),
            "keys.json": api.client.get("/v1/keys/signing").json(),
            "bundle.json": api.client.get("/v1/audit/bundle", headers=api.h("audra")).json(),
        }
    for name, body in files.items():
        (folder / name).write_text(json.dumps(body), encoding="utf-8")
    return folder, job


@pytest.fixture(scope="module")
def base_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the base distribution installed (no extras)."""
    here = tmp_path_factory.mktemp("base")
    env = here / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env)
    python = env / "bin" / "python"
    pip_install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    project = _copy_project(here / "project")
    subprocess.run(
        [*pip_install, "-c", str(ROOT / "requirements.lock"), str(project)],
        check=True,
        timeout=900,
    )
    return python


def test_the_base_install_has_none_of_the_server_libraries(base_install: Path) -> None:
    probe = "import importlib.util, json; print(json.dumps([m for m in {} if importlib.util.find_spec(m)]))"
    found = subprocess.run(
        [str(base_install), "-c", probe.format(list(SERVER_ONLY))],
        check=True,
        capture_output=True,
        text=True,
        cwd=base_install.parent,
    )
    assert json.loads(found.stdout) == []


def test_the_offline_verifier_runs_from_the_base_install(
    base_install: Path, evidence: tuple[Path, str]
) -> None:
    folder, job = evidence
    # cwd is the venv's folder, so the repository's own packages cannot shadow the installed ones.
    answer = subprocess.run(
        [str(base_install), "-c", VERIFY, str(folder)],
        check=True,
        capture_output=True,
        text=True,
        cwd=base_install.parent,
    )
    report = json.loads(answer.stdout)
    assert report["job"] == job
    assert report["events"] > 0
    assert "result" in report["edited"], report["edited"]


def test_this_test_runs_the_installed_copy_not_the_repository(base_install: Path) -> None:
    where = subprocess.run(
        [str(base_install), "-c", "import sandbox_api.client.verify as v; print(v.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=base_install.parent,
    )
    assert Path(where.stdout.strip()).is_relative_to(base_install.parent.parent)
    assert sys.prefix not in where.stdout
