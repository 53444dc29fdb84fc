"""The audit bundle: events, signed checkpoints (every N events or T minutes) and keys, verified offline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crypto.audit import CHECKPOINT_TYPE_V2, EVENT_FORMAT_V2, Checkpoint, verify_checkpoint
from crypto.keyring import LocalKeyring
from sandbox_api.bundle_format import BUNDLE_FORMAT_V2
from sandbox_api.cli.audit import build_app
from sandbox_api.client.verify import parse_keys, verify_bundle
from sandbox_api.server.services.audit import AuditLog
from sandbox_api.server.store import migrate
from sandbox_api.server.store.db import open_database
from tests.sandbox_api.api_helpers import World, world
from tests.sandbox_api.auditing_helpers import release

EVERY = 5
cli = CliRunner()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("bundle"), audit_checkpoint_every=EVERY) as deployment:
        release(deployment)
        yield deployment


def _bundle(api: World) -> dict[str, object]:
    answer = api.client.get("/v1/audit/bundle", headers=api.h("audra"))
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_a_bundle_verifies_and_ends_with_its_own_audited_export(api: World) -> None:
    bundle = _bundle(api)
    report = verify_bundle(bundle)
    events = bundle["events"]
    assert isinstance(events, list)
    assert report.count == len(events)
    last = events[-1]
    assert (last["event"], last["actor"], last["details"]) == (
        "audit.exported",
        "audra",
        {"format": "bundle"},
    )
    head = bundle["head"]
    assert isinstance(head, dict)
    assert head["seq"] == last["seq"] == report.last_seq
    assert head["hash"] == last["hash"]
    assert head["checkpoint"]["head_hash"] == last["hash"]
    checkpoints = bundle["checkpoints"]
    assert isinstance(checkpoints, list)
    assert [c["seq"] for c in checkpoints] == list(range(EVERY - 1, last["seq"] + 1, EVERY))
    assert report.checkpoints == len(checkpoints) + 1


def test_the_gateway_writes_every_event_and_checkpoint_in_the_rfc8785_formats(api: World) -> None:
    bundle = _bundle(api)
    assert bundle["format"] == BUNDLE_FORMAT_V2
    events, checkpoints = bundle["events"], bundle["checkpoints"]
    assert isinstance(events, list)
    assert isinstance(checkpoints, list)
    assert {e["format"] for e in events} == {EVENT_FORMAT_V2}
    assert {c["type"] for c in checkpoints} == {CHECKPOINT_TYPE_V2}
    # The listing says how each hash is computed, and the head's checkpoint verifies offline as served.
    listed = api.client.get("/v1/audit/events", headers=api.h("audra")).json()["events"]
    assert {e["format"] for e in listed} == {EVENT_FORMAT_V2}
    head = api.client.get("/v1/audit/head", headers=api.h("audra")).json()
    keys = parse_keys(api.client.get("/v1/keys/signing").json())
    verify_checkpoint(
        Checkpoint.from_json(json.dumps(head["checkpoint"])), {k: r.public for k, r in keys.items()}
    )


def test_the_cli_verifies_a_bundle_against_a_head_kept_elsewhere(api: World, tmp_path: Path) -> None:
    kept = api.client.get("/v1/audit/head", headers=api.h("audra")).json()["hash"]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(_bundle(api)), encoding="utf-8")
    keys = tmp_path / "keys.json"
    keys.write_text(api.client.get("/v1/keys/signing").text, encoding="utf-8")
    answer = cli.invoke(
        build_app(), ["audit", "verify", str(path), "--expected-head", kept, "--public-key", str(keys)]
    )
    assert answer.exit_code == 0, answer.output
    assert "the expected head is in the chain" in answer.output
    assert "given with --public-key" in answer.output


def test_the_cli_still_verifies_a_json_lines_export(api: World, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(api.client.get("/v1/audit/export", headers=api.h("audra")).text, encoding="utf-8")
    head = path.read_text().splitlines()[-1]
    answer = cli.invoke(build_app(), ["audit", "verify", str(path), "--head", json.loads(head)["hash"]])
    assert answer.exit_code == 0, answer.output


@pytest.mark.parametrize("who", ["alice", "admin", "olga", "stu"])
def test_only_auditors_export_bundles(api: World, who: str) -> None:
    assert api.client.get("/v1/audit/bundle", headers=api.h(who)).status_code == 403


def test_reads_and_exports_of_the_audit_log_are_audited(api: World) -> None:
    api.client.get("/v1/audit/events", headers=api.h("audra"), params={"limit": 1})
    api.client.get("/v1/audit/head", headers=api.h("audra"))
    _bundle(api)
    events = api.audit_events()
    kinds = [(e["event"], e["actor"]) for e in events[-5:]]
    assert ("audit.read", "audra") in kinds
    assert ("audit.exported", "audra") in kinds


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment


def test_a_checkpoint_is_signed_once_t_minutes_passed_since_the_last(tmp_path: Path) -> None:
    clock = _Clock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    keys = LocalKeyring.open(tmp_path / "keyring.json", create=True, clock=clock.now)
    db = open_database(f"sqlite:///{tmp_path / 'metadata.db'}")
    migrate.upgrade(db)
    audit = AuditLog(
        db=db,
        clock=clock,
        checkpoint_every=1000,
        signing_key=lambda: keys.ensure_signing_key(now=clock.now()),
        checkpoint_minutes=10,
    )
    try:
        for minutes in (0, 5, 9, 11, 12, 20, 22, 40):
            clock.moment = datetime(2026, 3, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)
            audit.record(event="test.tick", actor="t", details={"minute": minutes})
        signed = [(cp.seq, cp.at[11:16]) for cp in audit.checkpoints()]
    finally:
        db.dispose()
    # 09:11 is 11 minutes after the first event; 09:22 is 11 after that checkpoint; 09:40 is 18 after.
    assert signed == [(3, "09:11"), (6, "09:22"), (7, "09:40")]


def test_timed_checkpoints_stay_right_with_two_gateways_on_one_database(tmp_path: Path) -> None:
    """Each gateway remembers when the last checkpoint was; another one's checkpoint must still count."""
    clock = _Clock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    keys = LocalKeyring.open(tmp_path / "keyring.json", create=True, clock=clock.now)
    db = open_database(f"sqlite:///{tmp_path / 'metadata.db'}")
    migrate.upgrade(db)
    gateways = [
        AuditLog(
            db=db,
            clock=clock,
            checkpoint_every=1000,
            signing_key=lambda: keys.ensure_signing_key(now=clock.now()),
            checkpoint_minutes=10,
        )
        for _ in range(2)
    ]
    try:
        # Gateway 0 learns of the first event at 09:00; gateway 1 signs the 09:11 checkpoint; gateway 0
        # must then read it rather than sign again at 09:12 (12 minutes after what it remembered).
        for minutes, writer in ((0, 0), (5, 1), (11, 1), (12, 0), (20, 0), (22, 0), (23, 1)):
            clock.moment = datetime(2026, 3, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)
            gateways[writer].record(event="test.tick", actor="t", details={"minute": minutes})
        signed = [(cp.seq, cp.at[11:16]) for cp in gateways[0].checkpoints()]
    finally:
        db.dispose()
    assert signed == [(2, "09:11"), (5, "09:22")]
