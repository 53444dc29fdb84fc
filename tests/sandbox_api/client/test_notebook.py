"""The operator notebook runs top to bottom against a real gateway without a single cell erroring."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.sandbox_api.live_gateway import seeded_gateway

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "operator_walkthrough.ipynb"


def test_operator_notebook_runs_against_a_live_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with seeded_gateway(tmp_path / "state", citizens=2_000, visits=8_000, seed=77) as (url, cast):
        # The kernel inherits this process's environment: that is how the notebook finds the gateway.
        monkeypatch.setenv("SANDBOX_URL", url)
        monkeypatch.setenv("SANDBOX_TOKEN", cast.tokens["alice"])
        monkeypatch.delenv("SANDBOX_SCOPE", raising=False)
        client = NotebookClient(
            notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
        )
        client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    executed = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in executed)
    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in executed
        for output in cell.get("outputs", [])
    )
    assert "released" in text
    assert "job-rejected" in text
    assert os.environ["SANDBOX_TOKEN"] not in text  # the notebook never prints the token
