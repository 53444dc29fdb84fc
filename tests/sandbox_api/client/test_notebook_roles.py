"""The administrator's, steward's and policy officer's notebooks run top to bottom against one real
gateway, each with its own role's token, without a cell erroring; each shows what the role may do and is
refused what it may not."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from sandbox_api.cli import demo
from tests.sandbox_api.live_gateway import seeded_gateway

NOTEBOOKS = Path(__file__).resolve().parents[3] / "notebooks"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, demo.DemoCast]]:
    with seeded_gateway(tmp_path_factory.mktemp("state"), citizens=1_500, visits=3_000, seed=41) as live:
        yield live


def _run(notebook_name: str, env: Mapping[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Executes the notebook with ``env`` set (the kernel inherits it); returns the text it printed."""
    notebook = nbformat.read(NOTEBOOKS / notebook_name, as_version=4)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in code)
    outputs = [output for cell in code for output in cell.get("outputs", [])]
    assert [o for o in outputs if o.get("output_type") == "error"] == []
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    for token in env.values():
        if token.startswith("sbx_"):
            assert token not in text  # a notebook never prints a whole token
    return text


def test_the_admin_notebook(
    gateway: tuple[str, demo.DemoCast], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cast = gateway
    text = _run(
        "admin_walkthrough.ipynb",
        {"SANDBOX_URL": url, "SANDBOX_TOKEN": cast.tokens["admin"]},
        tmp_path,
        monkeypatch,
    )
    assert "signed in as admin (admin)" in text
    assert "created 'tax-bureau'" in text
    assert "tina" in text
    assert "steward" in text
    assert "the revoked token is refused: 401" in text
    assert "403" in text  # an administrator cannot submit a job
    assert "civil-affairs: new key" in text
    assert "1 version key(s) re-wrapped" in text


def test_the_steward_notebook(
    gateway: tuple[str, demo.DemoCast], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cast = gateway
    text = _run(
        "steward_walkthrough.ipynb",
        {
            "SANDBOX_URL": url,
            "SANDBOX_TOKEN": cast.tokens["carol"],
            "SANDBOX_REVIEWER_TOKEN": cast.tokens["cindy"],
        },
        tmp_path,
        monkeypatch,
    )
    assert "civil-affairs/citizens" in text
    assert "stored encrypted (new: True)" in text
    assert "state: draft" in text
    assert "district   pass" in text  # the validation report checked the declared categories
    assert "four eyes" in text  # carol cannot publish her own upload
    assert "published by cindy" in text
    assert "Atlantis" in text  # the refused value is named
    assert "retired" in text
    assert "active" in text
    assert "403" in text  # another domain's catalog is out of reach


def test_the_policy_officer_notebook(
    gateway: tuple[str, demo.DemoCast], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cast = gateway
    text = _run(
        "policy_officer_walkthrough.ipynb",
        {
            "SANDBOX_URL": url,
            "SANDBOX_TOKEN": cast.tokens["olga"],
            "SANDBOX_SECOND_TOKEN": cast.tokens["peter"],
        },
        tmp_path,
        monkeypatch,
    )
    assert "flu-study-2026" in text
    assert "pending, needs 2 approvals" in text
    assert "approved, approved by" in text
    assert "active: True" in text
    assert (
        "422 scope-inconsistent: civil-affairs/citizens is L3: disclosure.min_units must be at least 10"
        in text
    )
    assert "rejected: min_units 12 is below" in text
    assert "revoked: the budget study has ended; active: False" in text
