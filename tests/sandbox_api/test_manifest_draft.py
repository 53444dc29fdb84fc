"""The manifest drafted from a file's header, shared by ``sandbox dataset infer`` and the console."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox_api.errors import InvalidInput, PayloadTooLarge
from sandbox_api.manifest import Manifest
from sandbox_api.manifest_draft import SAMPLE_BYTES, draft_table, schema_of_file, schema_of_sample


def test_a_csv_sample_cut_mid_line_drops_the_partial_row_instead_of_misreading_it() -> None:
    sample = b"id,score,day\n1,2.5,2024-01-02\n2,3.5,2024-01-0"
    drafted = draft_table("t", schema_of_sample(sample, parquet=False, whole=False))
    assert [(c["name"], c["type"], c["class"]) for c in drafted["columns"]] == [
        ("id", "BIGINT", "identifying"),
        ("score", "DOUBLE", "internal"),
        ("day", "DATE", "internal"),
    ]
    # The draft is a valid manifest as it stands.
    Manifest.model_validate({"tables": [drafted]})


def test_a_header_longer_than_the_sample_and_an_oversized_sample_are_refused() -> None:
    with pytest.raises(InvalidInput, match="no whole line"):
        schema_of_sample(b"a_very_long_header_without_an_end", parquet=False, whole=False)
    with pytest.raises(PayloadTooLarge):
        schema_of_sample(b"a\n" * SAMPLE_BYTES, parquet=False, whole=True)


def test_the_unit_must_be_a_column_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("person,age\np1,30\n", encoding="utf-8")
    drafted = draft_table("people", schema_of_file(path), unit="person")
    assert drafted["unit"] == "person"
    with pytest.raises(InvalidInput, match="no column 'nobody'"):
        draft_table("people", schema_of_file(path), unit="nobody")
