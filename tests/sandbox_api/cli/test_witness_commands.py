"""The witness's and the auditor's commands for witnessed checkpoints, against an in-process gateway:
keygen, register, sign (which refuses a history that no longer holds its last head), verify with the
witnesses' keys, and the head appended to an append-only file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sandbox_api.cli import audit, witness
from sandbox_api.cli.main import app
from sandbox_api.client.auditor import AuditorClient
from tests.sandbox_api.api_helpers import World, world
from tests.sandbox_api.auditing_helpers import release

runner = CliRunner()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("witness-cli"), audit_checkpoint_every=4) as deployment:
        release(deployment)
        yield deployment


@pytest.fixture(autouse=True)
def in_process(api: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands talk to the test gateway through its in-process transport."""

    @contextmanager
    def remote(url: str, token: str) -> Iterator[AuditorClient]:
        with AuditorClient("http://testserver", token, transport=api.client._transport) as client:
            yield client

    monkeypatch.setattr(witness, "remote", remote)
    monkeypatch.setattr(audit, "remote", remote)


def run(api: World, who: str, *args: str) -> Result:
    return runner.invoke(app, [*args, "--token", api.tokens[who]])


def offline(*args: str) -> Result:
    return runner.invoke(app, list(args))


def test_a_witness_cosigns_and_the_auditor_verifies_with_its_key(api: World, tmp_path: Path) -> None:
    key = tmp_path / "outside.key"
    made = offline("witness", "keygen", "--name", "outside-auditor", "--key", str(key))
    assert made.exit_code == 0, made.output
    assert offline("witness", "keygen", "--name", "x", "--key", str(key)).exit_code == 1  # never overwritten
    public = made.stdout.strip()
    registered = run(api, "admin", "witness", "register", "outside-auditor", "--public-key", public)
    assert registered.exit_code == 0, registered.output
    signed = run(api, "audra", "witness", "sign", "--key", str(key))
    assert signed.exit_code == 0, signed.output
    assert "co-signed" in signed.stdout
    state = json.loads((tmp_path / "outside.key.state").read_text())
    keys, bundle = tmp_path / "witnesses.json", tmp_path / "bundle.json"
    assert run(api, "audra", "witness", "list", "--out", str(keys)).exit_code == 0
    assert run(api, "audra", "audit", "bundle", "--out", str(bundle)).exit_code == 0
    document = json.loads(bundle.read_text())
    witnessed = {s["seq"] for s in document["witness_signatures"]}
    assert state["seq"] == max(witnessed)
    # Every co-signature verifies; checkpoints written after the witness ran are named as lacking it.
    verified = offline(
        "audit", "verify", str(bundle), "--witness-keys", str(keys), "--require-witness", "outside-auditor"
    )
    assert verified.exit_code == 1, verified.output
    assert "witness co-signatures verified" in verified.output
    lacking = [
        int(line.split()[4]) for line in verified.output.splitlines() if line.startswith("UNWITNESSED")
    ]
    assert lacking
    assert min(lacking) > state["seq"]
    assert not set(lacking) & witnessed
    # A witness nobody registered: every stored checkpoint lacks it.
    none = offline("audit", "verify", str(bundle), "--witness-keys", str(keys), "--require-witness", "ghost")
    assert none.output.count("UNWITNESSED") == len(document["checkpoints"])


def test_a_witness_refuses_a_chain_that_no_longer_holds_the_head_it_signed(
    api: World, tmp_path: Path
) -> None:
    key = tmp_path / "health.key"
    public = offline("witness", "keygen", "--name", "health-witness", "--key", str(key)).stdout.strip()
    assert (
        run(
            api,
            "admin",
            "witness",
            "register",
            "health-witness",
            "--domain",
            "health-bureau",
            "--public-key",
            public,
        ).exit_code
        == 0
    )
    # Its record says it co-signed a head the gateway's chain does not hold at that seq (as after a
    # rewrite of history): it signs nothing and says why.
    (tmp_path / "health.key.state").write_text(json.dumps({"seq": 0, "head_hash": "ab" * 32}))
    refused = run(api, "audra", "witness", "sign", "--key", str(key))
    assert refused.exit_code == 1, refused.output
    assert "REFUSED" in refused.output
    assert "co-signed before" in refused.output
    page = api.client.get("/v1/audit/checkpoints", headers=api.h("audra"), params={"limit": 1000}).json()
    assert not any(
        s["witness"] == "health-witness" for c in page["checkpoints"] for s in c["witness_signatures"]
    )


def test_the_head_is_appended_as_one_json_line_per_export(api: World, tmp_path: Path) -> None:
    store = tmp_path / "heads.jsonl"
    for _ in range(2):
        appended = run(api, "audra", "audit", "head", "--append-to", str(store))
        assert appended.exit_code == 0, appended.output
    lines = [json.loads(line) for line in store.read_text().splitlines()]
    assert [line["format"] for line in lines] == ["data-sandbox/audit-head/v1"] * 2
    assert lines[0]["seq"] < lines[1]["seq"]
    assert lines[1]["checkpoint"]["head_hash"] == lines[1]["hash"]
    export = tmp_path / "audit.jsonl"
    assert run(api, "audra", "audit", "export", "--out", str(export)).exit_code == 0
    for line in lines:
        checked = offline("audit", "verify", str(export), "--expected-head", line["hash"])
        assert checked.exit_code == 0, checked.output
