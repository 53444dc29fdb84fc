"""The Python walkthrough runs top to bottom against a real gateway: mock analysis, real release, the
refusal of a Python job that joins two domains, review."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from sandbox_api.cli import demo_data
from tests.sandbox_api.live_gateway import seeded_gateway

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "python_walkthrough.ipynb"
PYTHON = "python: {allowed: true, modules: [pandas, numpy, math, statistics]}"


def test_python_notebook_runs_against_a_live_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with seeded_gateway(tmp_path / "state", citizens=2_000, visits=8_000, seed=78) as (url, cast):
        today = date.today()
        document = demo_data.demo_scope_yaml(
            valid_from=date(today.year, 1, 1), valid_until=date(today.year + 1, 12, 31)
        )
        assert PYTHON in document  # the demo scope, approved by the seeding, lets operators run Python
        monkeypatch.setenv("SANDBOX_URL", url)
        monkeypatch.setenv("SANDBOX_TOKEN", cast.tokens["alice"])
        monkeypatch.setenv("SANDBOX_CHECKER_TOKEN", cast.tokens["otto"])
        monkeypatch.setenv("SANDBOX_SCOPE", demo_data.DEMO_SCOPE_NAME)
        client = NotebookClient(
            notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
        )
        client.execute()
    executed = [cell for cell in notebook.cells if cell.cell_type == "code"]
    errors = [o for cell in executed for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    assert all(cell.get("execution_count") for cell in executed)
    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in executed
        for output in cell.get("outputs", [])
    )
    assert "mode: mock" in text
    assert "mode: real" in text
    assert "withheld" in text
    assert "job-not-ready" in text
    assert "income_per_birth_year" in text
    # A Python job joining the two domains of the demo scope is refused in real mode, with what to do.
    assert "allowed: False" in text
    assert "python_one_domain" in text
    assert os.environ["SANDBOX_TOKEN"] not in text
    assert os.environ["SANDBOX_CHECKER_TOKEN"] not in text
