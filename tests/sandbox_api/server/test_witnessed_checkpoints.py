"""Witnessed audit checkpoints: each domain's witness (and an outside one) co-signs the gateway's
checkpoints, offline verification checks every co-signature, and a rewritten history is caught."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from crypto.audit import AuditEntry, Checkpoint, chain, sign_checkpoint
from crypto.errors import IntegrityError
from crypto.signing import SM2
from sandbox_api.client.verify import parse_witnesses, verify_bundle
from sandbox_api.client.witness import WitnessKeyFile, cosign, new_key
from tests.sandbox_api.api_helpers import DOMAIN, OTHER_DOMAIN, World, world
from tests.sandbox_api.auditing_helpers import release

EVERY = 5


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    required = ["domain:*", "outside-auditor"]
    with world(
        tmp_path_factory.mktemp("witness"), audit_checkpoint_every=EVERY, audit_witnesses_required=required
    ) as deployment:
        release(deployment)
        yield deployment


@pytest.fixture(scope="module")
def keys(api: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, WitnessKeyFile]:
    folder = tmp_path_factory.mktemp("witness-keys")
    made = {
        "health-witness": (new_key(folder / "h.key", name="health-witness"), DOMAIN),
        "civil-witness": (new_key(folder / "c.key", name="civil-witness", algorithm=SM2), OTHER_DOMAIN),
        "outside-auditor": (new_key(folder / "o.key", name="outside-auditor"), None),
    }
    for name, (key, domain) in made.items():
        body = {"name": name, "domain": domain, "public_key": key.pair.public.hex()}
        answer = api.client.post("/v1/witnesses", headers=api.h("admin"), json=body)
        assert answer.status_code == 201, answer.text
    return {name: key for name, (key, _) in made.items()}


def _export(api: World) -> list[AuditEntry]:
    answer = api.client.get("/v1/audit/export", headers=api.h("audra"))
    assert answer.status_code == 200
    return [AuditEntry.from_json(line) for line in answer.text.splitlines() if line.strip()]


def _pending(api: World, witness: str) -> list[Checkpoint]:
    answer = api.client.get(
        "/v1/audit/checkpoints", headers=api.h("audra"), params={"unwitnessed_by": witness}
    )
    assert answer.status_code == 200, answer.text
    return [Checkpoint.from_json(json.dumps(c["checkpoint"])) for c in answer.json()["checkpoints"]]


def _witness_all(api: World, key: WitnessKeyFile, previous: tuple[int, str] | None) -> tuple[int, str]:
    pending = _pending(api, key.name)
    assert pending
    for ws in cosign(key, _export(api), pending, previous):
        posted = api.client.post(
            f"/v1/audit/checkpoints/{ws.seq}/witness", headers=api.h("audra"), json=ws.to_dict()
        )
        assert posted.status_code == 201, posted.text
    return pending[-1].seq, pending[-1].head_hash


def _bundle(api: World) -> dict[str, Any]:
    answer = api.client.get("/v1/audit/bundle", headers=api.h("audra"))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _witness_keys(api: World) -> dict[str, Any]:
    listed = api.client.get("/v1/witnesses", headers=api.h("audra"))
    assert listed.status_code == 200
    return {"witnesses": listed.json(), "required": ["domain:*", "outside-auditor"]}


def test_registering_and_cosigning_are_audited_and_a_forged_cosignature_is_refused(
    api: World, keys: dict[str, WitnessKeyFile]
) -> None:
    registered = {e["details"]["witness"] for e in api.audit_events("audit.witness_registered")}
    assert registered == set(keys)
    outside = keys["outside-auditor"]
    cp = _pending(api, outside.name)[0]
    # Signed by another witness's key under the outside auditor's name: refused, nothing stored.
    forged = cosign(replace(keys["health-witness"], name=outside.name), _export(api), [cp], None)[0]
    answer = api.client.post(
        f"/v1/audit/checkpoints/{cp.seq}/witness", headers=api.h("audra"), json=forged.to_dict()
    )
    assert answer.status_code == 422, answer.text
    assert _pending(api, outside.name)[0].seq == cp.seq
    # A true co-signature is stored once and audited; a second copy is a conflict.
    good = cosign(outside, _export(api), [cp], None)[0]
    path = f"/v1/audit/checkpoints/{cp.seq}/witness"
    assert api.client.post(path, headers=api.h("audra"), json=good.to_dict()).status_code == 201
    assert api.client.post(path, headers=api.h("audra"), json=good.to_dict()).status_code == 409
    witnessed = api.audit_events("audit.witnessed")
    assert [(e["details"]["witness"], e["details"]["seq"]) for e in witnessed] == [(outside.name, cp.seq)]
    # A witness of an unknown domain, a key of no known length, an unknown witness's queue: refused.
    public = outside.pair.public.hex()
    unknown = {"name": "w2", "domain": "no-such-domain", "public_key": public}
    assert api.client.post("/v1/witnesses", headers=api.h("admin"), json=unknown).status_code == 404
    short = {"name": "w2", "public_key": public[:-2]}
    assert api.client.post("/v1/witnesses", headers=api.h("admin"), json=short).status_code == 422
    queue = api.client.get("/v1/audit/checkpoints", headers=api.h("audra"), params={"unwitnessed_by": "w2"})
    assert queue.status_code == 404
    # An admin cannot register over an existing witness to swap its key.
    again = {"name": outside.name, "public_key": keys["health-witness"].pair.public.hex()}
    assert api.client.post("/v1/witnesses", headers=api.h("admin"), json=again).status_code == 409


def test_offline_verification_checks_every_cosignature_and_names_missing_witnesses(
    api: World, keys: dict[str, WitnessKeyFile]
) -> None:
    before = verify_bundle(_bundle(api), witness_keys=parse_witnesses(_witness_keys(api))[0])
    assert before.unwitnessed, "the deployment requires witnesses nobody has signed for yet"
    assert any("civil-witness" in lacking for _, lacking in before.unwitnessed)
    heads = [
        _witness_all(api, key, None if key.name != "outside-auditor" else _last(api, key.name))
        for key in keys.values()
    ]
    bundle = _bundle(api)
    witness_keys, required = parse_witnesses(_witness_keys(api))
    report = verify_bundle(bundle, witness_keys=witness_keys, required_witnesses=required)
    assert report.witness_signatures == len(bundle["witness_signatures"])
    # Co-signing is itself audited, so new checkpoints appear as the witnesses work: every one up to
    # the last head all three co-signed is complete; only later ones may still lack a witness.
    everyone = min(seq for seq, _ in heads)
    assert any(c["seq"] <= everyone for c in bundle["checkpoints"])
    assert all(seq > everyone for seq, _ in report.unwitnessed)
    assert report.unwitnessed, "the checkpoints written by the co-signing itself are not witnessed yet"
    # A co-signature the auditor's keys do not confirm fails the whole verification.
    edited = json.loads(json.dumps(bundle))
    edited["witness_signatures"][0]["head_hash"] = "00" * 32
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_bundle(edited, witness_keys=witness_keys)


def _last(api: World, witness: str) -> tuple[int, str] | None:
    answer = api.client.get("/v1/audit/checkpoints", headers=api.h("audra"), params={"limit": 1000})
    signed = [
        (c["checkpoint"]["seq"], c["checkpoint"]["head_hash"])
        for c in answer.json()["checkpoints"]
        if any(s["witness"] == witness for s in c["witness_signatures"])
    ]
    return signed[-1] if signed else None


def _rewrite(entries: list[AuditEntry], seq: int) -> list[AuditEntry]:
    """What an administrator with the database can do: edit one event and re-hash everything after."""
    out = entries[:seq]
    edited = entries[seq]
    prev = out[-1] if out else None
    out.append(
        chain(
            prev,
            at=edited.at,
            event=edited.event,
            actor="someone-else",
            details=edited.details,
            format=edited.format,
        )
    )
    for entry in entries[seq + 1 :]:
        out.append(
            chain(
                out[-1],
                at=entry.at,
                event=entry.event,
                actor=entry.actor,
                details=entry.details,
                format=entry.format,
            )
        )
    return out


def test_a_rewritten_history_with_fresh_gateway_checkpoints_is_caught_by_the_witnesses(
    api: World, keys: dict[str, WitnessKeyFile]
) -> None:
    bundle = _bundle(api)
    witness_keys, _ = parse_witnesses(_witness_keys(api))
    assert verify_bundle(bundle, witness_keys=witness_keys).witness_signatures > 0
    entries = [AuditEntry.from_json(json.dumps(e)) for e in bundle["events"]]
    forged = _rewrite(entries, 1)
    # The administrator also holds the gateway's signing key: every gateway checkpoint is re-signed.
    gateway = api.client.app.state.services.audit.signing_key()  # type: ignore[attr-defined]
    by_seq = {e.seq: e.hash for e in forged}

    def resign(data: dict[str, Any]) -> dict[str, Any]:
        cp = Checkpoint.from_json(json.dumps(data))
        fresh = sign_checkpoint(gateway, seq=cp.seq, head_hash=by_seq[cp.seq], at=cp.at, type=cp.type)
        return fresh.to_dict()

    rewritten = {
        **bundle,
        "events": [json.loads(e.to_json()) for e in forged],
        "checkpoints": [resign(c) for c in bundle["checkpoints"]],
        "head": {
            **bundle["head"],
            "hash": forged[-1].hash,
            "checkpoint": resign(bundle["head"]["checkpoint"]),
        },
    }
    # Without the witnesses it would pass: the gateway's signatures alone cannot tell.
    assert verify_bundle({**rewritten, "witness_signatures": []}).count == len(forged)
    with pytest.raises(IntegrityError, match="rewritten"):
        verify_bundle(rewritten, witness_keys=witness_keys)
    # Dropping the co-signatures as well leaves every checkpoint without its required witnesses.
    stripped = verify_bundle({**rewritten, "witness_signatures": []}, witness_keys=witness_keys)
    assert [seq for seq, _ in stripped.unwitnessed] == [c["seq"] for c in bundle["checkpoints"]]
    # And no witness co-signs a head of the rewritten chain: it no longer holds the head signed before.
    key = keys["health-witness"]
    previous = _last(api, key.name)
    assert previous is not None
    later = max(by_seq)
    fresh = Checkpoint(seq=later, head_hash=by_seq[later], at="t", kid="k", signature=b"")
    with pytest.raises(IntegrityError, match="co-signed before"):
        cosign(key, forged, [fresh], previous)
    # The honest chain, by contrast, still extends what it signed.
    honest = max(e.seq for e in entries)
    cosign(key, entries, [replace(fresh, head_hash=entries[honest].hash)], previous)
