"""Encrypted, unit-partitioned storage: round trips, canonical version ids, and tamper/swap detection."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from crypto.envelope import unseal
from crypto.errors import IntegrityError
from crypto.hashing import sha256_hex
from crypto.keyring import LocalKeyring
from crypto.profile import PROFILES
from crypto.sm import sm3_hex, sm4_gcm_unseal
from executors.base import Limits, PartRef
from executors.engine import run_query
from executors.errors import DataUnavailable, PartIntegrityError, StorageError
from executors.storage import load_parts, part_aad, read_table, version_id_of, write_version
from tests.executors.executors_fixtures import StoredVersion, store_version, visits_table

AGGREGATE = (
    "SELECT district, COUNT(DISTINCT person_id) AS units, COUNT(*) AS n, SUM(cost) AS cost "
    "FROM visits GROUP BY district ORDER BY district"
)


def _sorted_rows(table: pa.Table) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda row: tuple(str(v) for v in row.values()))


def test_version_id_ignores_row_order_chunking_and_metadata() -> None:
    table = visits_table(400)
    shuffled = table.take(pc.sort_indices(table, sort_keys=[("cost", "descending"), ("name", "ascending")]))
    chunked = pa.concat_tables([table.slice(0, 100), table.slice(100)])
    with_meta = table.replace_schema_metadata({b"pandas": b"{}"})
    ids = {version_id_of({"visits": t}) for t in (table, shuffled, chunked, with_meta)}
    assert len(ids) == 1


def test_version_id_changes_with_any_value_name_or_table() -> None:
    table = visits_table(400)
    changed = table.set_column(2, "cost", pa.array([0.5, *table.column("cost").to_pylist()[1:]]))
    renamed = table.rename_columns(["person_id", "district", "amount", "name"])
    base = version_id_of({"visits": table})
    assert base != version_id_of({"visits": changed})
    assert base != version_id_of({"visits": renamed})
    assert base != version_id_of({"visits": table, "extra": table})


@pytest.mark.parametrize("n_parts", [1, 3, 16])
def test_round_trip_and_results_do_not_depend_on_part_count(
    tmp_path: Path, keyring: LocalKeyring, n_parts: int
) -> None:
    table = visits_table()
    stored = store_version(
        tmp_path, keyring, {"visits": table}, units={"visits": "person_id"}, n_parts=n_parts
    )
    assert stored.version_id == version_id_of({"visits": table})
    back = read_table(stored.inputs["visits"], stored.data_key)
    assert len(stored.inputs["visits"].parts) == n_parts
    assert _sorted_rows(back) == _sorted_rows(table)
    limits = Limits(memory_mb=256, threads=1)
    assert (
        run_query(AGGREGATE, {"visits": back}, keyed_hash_key=None, limits=limits).to_pylist()
        == run_query(AGGREGATE, {"visits": table}, keyed_hash_key=None, limits=limits).to_pylist()
    )


def test_every_unit_lives_in_exactly_one_part(tmp_path: Path, keyring: LocalKeyring) -> None:
    stored = store_version(
        tmp_path, keyring, {"visits": visits_table()}, units={"visits": "person_id"}, n_parts=5
    )
    table_input = stored.inputs["visits"]
    seen: dict[int, int] = {}
    non_empty = 0
    for index, part in enumerate(table_input.parts):
        plain = unseal(stored.data_key, Path(part.path).read_bytes(), aad=part.aad)
        units = set(load_parts([plain]).column("person_id").to_pylist())
        non_empty += bool(units)
        for unit in units:
            assert seen.setdefault(unit, index) == index, f"unit {unit} is in parts {seen[unit]} and {index}"
    assert len(seen) == len(set(visits_table().column("person_id").to_pylist()))
    assert non_empty > 1


def test_parts_on_disk_are_ciphertext(visits: StoredVersion) -> None:
    for part in visits.inputs["visits"].parts:
        blob = Path(part.path).read_bytes()
        assert b"PAR1" not in blob
        assert b"Secret-Name" not in blob
        assert b"district" not in blob


def test_a_flipped_byte_is_detected_and_named(tmp_path: Path, keyring: LocalKeyring) -> None:
    stored = store_version(
        tmp_path, keyring, {"visits": visits_table()}, units={"visits": "person_id"}, n_parts=3
    )
    path = Path(stored.inputs["visits"].parts[1].path)
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0x80
    path.write_bytes(bytes(blob))
    with pytest.raises(PartIntegrityError) as raised:
        read_table(stored.inputs["visits"], stored.data_key)
    assert isinstance(raised.value, IntegrityError)
    assert "part 1 (part-00001.enc)" in raised.value.detail


def _two_versions(
    tmp_path: Path, keyring: LocalKeyring
) -> tuple[StoredVersion, StoredVersion, StoredVersion]:
    units = {"visits": "person_id", "other": "person_id"}
    first = store_version(
        tmp_path, keyring, {"visits": visits_table(), "other": visits_table(800)}, units=units, n_parts=3
    )
    second = store_version(tmp_path, keyring, {"visits": visits_table(1200)}, units=units, n_parts=3)
    elsewhere = store_version(
        tmp_path, keyring, {"visits": visits_table()}, units=units, n_parts=3, dataset="visits-copy"
    )
    return first, second, elsewhere


SWAPS = ["index", "table", "version", "dataset"]


@pytest.mark.parametrize("swap", SWAPS)
def test_a_part_moved_from_elsewhere_fails(tmp_path: Path, keyring: LocalKeyring, swap: str) -> None:
    first, second, elsewhere = _two_versions(tmp_path, keyring)
    target = first.inputs["visits"]
    source = {
        "index": target.parts[2],
        "table": first.inputs["other"].parts[0],
        "version": second.inputs["visits"].parts[0],
        "dataset": elsewhere.inputs["visits"].parts[0],
    }[swap]
    # An attacker with write access to the data directory replaces the file of part 0.
    shutil.copyfile(source.path, target.parts[0].path)
    # With a shared data key (same version) or not, authentication fails on the associated data.
    with pytest.raises(PartIntegrityError) as raised:
        read_table(target, first.data_key)
    assert "part 0" in raised.value.detail


def test_a_part_recorded_with_another_aad_is_refused(visits: StoredVersion) -> None:
    table = visits.inputs["visits"]
    parts = (PartRef(path=table.parts[1].path, aad=table.parts[1].aad), *table.parts[1:])
    with pytest.raises(PartIntegrityError) as raised:
        read_table(replace(table, parts=parts), visits.data_key)
    assert "wrong associated data" in raised.value.detail


def test_a_missing_part_is_data_unavailable(tmp_path: Path, keyring: LocalKeyring) -> None:
    stored = store_version(
        tmp_path, keyring, {"visits": visits_table()}, units={"visits": "person_id"}, n_parts=2
    )
    Path(stored.inputs["visits"].parts[1].path).unlink()
    with pytest.raises(DataUnavailable):
        read_table(stored.inputs["visits"], stored.data_key)


def test_part_aad_binds_every_coordinate() -> None:
    assert part_aad(domain="d", dataset="s", version_id="v", table="t", index=0) == b"d/s/v/t/0"


def _write(root: Path, **overrides: object) -> None:
    table = visits_table(100)
    arguments: dict[str, object] = {
        "domain": "health-bureau",
        "dataset": "visits",
        "version_id": version_id_of({"visits": table}),
        "tables": {"visits": table},
        "units": {"visits": "person_id"},
        "data_key": bytes(32),
        "partition_key": bytes(32),
        "n_parts": 2,
    }
    write_version(root, **{**arguments, **overrides})  # type: ignore[arg-type]


BAD_WRITES = {
    "dotdot domain": {"domain": ".."},
    "slash dataset": {"dataset": "a/b"},
    "hidden table": {"tables": {".visits": visits_table(10)}, "units": {".visits": "person_id"}},
    "no unit": {"units": {}},
    "unit not a column": {"units": {"visits": "nobody"}},
    "zero parts": {"n_parts": 0},
    "no tables": {"tables": {}},
}


@pytest.mark.parametrize("overrides", BAD_WRITES.values(), ids=BAD_WRITES.keys())
def test_bad_writes_are_refused_and_leave_nothing(tmp_path: Path, overrides: dict[str, object]) -> None:
    with pytest.raises(StorageError):
        _write(tmp_path, **overrides)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_an_existing_version_is_never_overwritten(tmp_path: Path) -> None:
    _write(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.enc")}
    with pytest.raises(StorageError):
        _write(tmp_path, data_key=bytes(range(32)))
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.enc")} == before
    assert not [p for p in tmp_path.rglob(".staging-*")]


class _Recording:
    """A hasher that keeps what it is fed, to hash the same bytes with both profiles' hashes."""

    def __init__(self) -> None:
        self.fed = bytearray()

    def update(self, data: bytes) -> None:
        self.fed += data

    def hexdigest(self) -> str:
        return ""


def test_gm_version_id_is_sm3_of_the_same_canonical_plaintext() -> None:
    tables = {"visits": visits_table(50)}
    recorded = _Recording()
    version_id_of(tables, new_hash=lambda: recorded)
    assert version_id_of(tables) == sha256_hex(bytes(recorded.fed))  # international: unchanged
    assert version_id_of(tables, new_hash=PROFILES["gm"].new_hash) == sm3_hex(bytes(recorded.fed))


def test_parts_written_with_an_sm4_data_key_are_sm4_gcm_and_read_back(tmp_path: Path) -> None:
    table = visits_table(100)
    key = PROFILES["gm"].aead.new_key()
    version_id = version_id_of({"visits": table}, new_hash=PROFILES["gm"].new_hash)
    layout = write_version(
        tmp_path,
        domain="health-bureau",
        dataset="visits",
        version_id=version_id,
        tables={"visits": table},
        units={"visits": "person_id"},
        data_key=key,
        partition_key=bytes(32),
        n_parts=2,
    )
    refs = layout.parts["visits"]
    plaintexts = [sm4_gcm_unseal(key, Path(ref.path).read_bytes(), aad=ref.aad) for ref in refs]
    assert load_parts(plaintexts).num_rows == table.num_rows
    with pytest.raises(IntegrityError):  # not AES-256-GCM under any 32-byte key
        unseal(bytes(32), Path(refs[0].path).read_bytes(), aad=refs[0].aad)
