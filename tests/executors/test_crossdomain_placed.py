"""A cross-domain job on a real local executor: each domain's part in its own sandboxes, with only its
own key and data, and nothing but protocol messages between the parties."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from crypto.envelope import unseal
from crypto.errors import CryptoError
from crypto.keyring import LocalKeyring
from executors.base import JobSpec, ResultTable
from executors.crossdomain import wire
from executors.crossdomain.job import CrossDomainJob, DomainPartSpec, Step
from executors.crossdomain.messages import BlindedBatches, Payloads, ShareSumRequest
from executors.crossdomain.placed import Crossing, Placing, run_cross_domain
from executors.crossdomain.plan import Side
from executors.crossdomain.rounds import BLINDING_BYTES, PEOPLE_BYTES, state_aad, state_key
from executors.crossdomain.split import split
from executors.errors import ExecutionCancelled
from executors.local import LocalExecutor
from tests.executors.crossdomain_world import TARGET, K, citizens, plain_join, visits
from tests.executors.executors_fixtures import store_version

SQL = (
    "SELECT c.district AS district, COUNT(DISTINCT v.person_id) AS patients, COUNT(*) AS visits, "
    "SUM(v.cost) AS total_cost FROM visits AS v JOIN citizens AS c ON v.person_id = c.person_id "
    "GROUP BY c.district"
)


DATA_KEYS: dict[str, bytes] = {}  # each domain's data key, as only its own executors unwrap it


@dataclass
class Probe:
    """A test-only probe at the executor's door: every spec a sandbox received and every result it
    sent back, and which domains' data keys the key provider unwrapped for each."""

    inner: LocalExecutor
    specs: list[JobSpec] = field(default_factory=list)
    results: list[ResultTable] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, spec: JobSpec) -> ResultTable:
        with self.lock:
            self.specs.append(spec)
        result = self.inner.run(spec)
        with self.lock:
            self.results.append(result)
        return result

    def cancel(self, job_id: str) -> bool:
        return self.inner.cancel(job_id)

    def close(self) -> None:
        self.inner.close()


class UnwrapProbe(LocalKeyring):
    """The key provider, recording the domain of every data key it unwraps."""

    unwrapped: list[str]

    def unwrap(self, domain: str, wrapped: bytes, *, aad: bytes) -> bytes:
        self.unwrapped.append(domain)
        return super().unwrap(domain, wrapped, aad=aad)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[JobSpec, pd.DataFrame, pd.DataFrame, Path]:
    root = tmp_path_factory.mktemp("xd")
    keyring = LocalKeyring.open(root / "keyring.json", create=True)
    left, right = citizens(), visits()
    stored_c = store_version(
        root,
        keyring,
        {"citizens": pa.Table.from_pandas(left, preserve_index=False)},
        units={"citizens": "person_id"},
        n_parts=2,
        domain="civil-affairs",
        dataset="citizens",
    )
    stored_v = store_version(
        root,
        keyring,
        {"visits": pa.Table.from_pandas(right, preserve_index=False)},
        units={"visits": "person_id"},
        n_parts=2,
        domain="health-bureau",
        dataset="visits",
    )
    DATA_KEYS.update({"health-bureau": stored_v.data_key, "civil-affairs": stored_c.data_key})
    query = split(
        SQL,
        datasets={"visits": "health-bureau/visits", "citizens": "civil-affairs/citizens"},
        domains={"health-bureau/visits": "health-bureau", "civil-affairs/citizens": "civil-affairs"},
        one_row={"civil-affairs/citizens"},  # a register: one row per person, as its catalog says
    )
    job = CrossDomainJob(
        plan=query.plan,
        left=DomainPartSpec("health-bureau", "health-bureau/visits", query.left.sql, ("visits",)),
        right=DomainPartSpec("civil-affairs", "civil-affairs/citizens", query.right.sql, ("citizens",)),
        min_units=K,
        columns=("district", "patients", "visits", "total_cost"),
    )
    spec = JobSpec(
        job_id="xd-job-1",
        sql=SQL,
        tables=(stored_v.inputs["visits"], stored_c.inputs["citizens"]),
        keyed_hash_key=None,
        cross_domain=job,
    )
    return spec, left, right, root / "keyring.json"


@pytest.fixture(scope="module")
def ran(
    world: tuple[JobSpec, pd.DataFrame, pd.DataFrame, Path],
) -> tuple[Probe, UnwrapProbe, list[Crossing], ResultTable]:
    spec, _, _, keyring_path = world
    keys = UnwrapProbe.open(keyring_path)
    keys.unwrapped = []
    probe = Probe(LocalExecutor(key_provider=keys, max_workers=2))
    crossings: list[Crossing] = []
    try:
        result = run_cross_domain(probe, spec, observe=crossings.append)
    finally:
        probe.close()
    return probe, keys, crossings, result


def test_the_joint_result_is_the_plain_join_above_k(world, ran) -> None:
    _, left, right, _ = world
    result = ran[3].to_pandas()
    oracle = plain_join(left, right)
    oracle = oracle[oracle["patients"] >= K].sort_values("district").reset_index(drop=True)
    assert result["district"].tolist() == oracle["district"].tolist()
    assert result["patients"].tolist() == oracle["patients"].tolist()
    assert result["visits"].tolist() == oracle["visits"].tolist()
    assert result["total_cost"].round(2).tolist() == oracle["total_cost"].round(2).tolist()
    assert result["_sbx_units"].tolist() == oracle["patients"].tolist()
    assert "Tiny" not in result["district"].tolist()  # P0042's one-person district is never summed


def test_no_sandbox_receives_two_domains_tables_or_keys(ran) -> None:
    probe, keys, _, _ = ran
    assert len(probe.specs) == 7  # hello, blind, re-blind on each side; one answer (only visits is summed)
    for spec in probe.specs:
        assert spec.party is not None
        assert spec.cross_domain is None
        assert len({t.domain for t in spec.tables}) == 1, spec.job_id
        assert spec.party.side.value in spec.job_id
    domains = {
        side: {t.domain for s in probe.specs if s.party and s.party.side is side for t in s.tables}
        for side in Side
    }
    assert domains == {Side.LEFT: {"health-bureau"}, Side.RIGHT: {"civil-affairs"}}
    # Every data key unwrapped went to a sandbox whose spec names that domain's tables only.
    assert sorted(set(keys.unwrapped)) == ["civil-affairs", "health-bureau"]
    assert len(keys.unwrapped) == len(probe.specs)


def test_the_gateway_relays_each_blinding_key_sealed_and_cannot_open_it(ran) -> None:
    probe = ran[0]
    reblinds = [s for s in probe.specs if s.party is not None and s.party.step is Step.REBLIND]
    assert len(reblinds) == 2
    for spec in reblinds:
        party = spec.party
        assert party is not None
        own, other = spec.tables[0].domain, ({*DATA_KEYS} - {spec.tables[0].domain}).pop()
        # It opens under a key derived from the domain's own data key, which the spec does not carry,
        # and under nothing the other domain holds.
        # Its blinding key (32 bytes) and its number of people (8), nothing more under shares.
        opened = unseal(state_key(party, (DATA_KEYS[own],)), party.sealed_state, aad=state_aad(party))
        assert len(opened) == BLINDING_BYTES + PEOPLE_BYTES
        with pytest.raises(CryptoError):
            unseal(state_key(party, (DATA_KEYS[other],)), party.sealed_state, aad=state_aad(party))


def test_what_leaves_a_sandbox_is_messages_only(ran) -> None:
    probe = ran[0]
    for result in probe.results:
        assert result.to_arrow().column_names == ["recipient", "message"]


def test_no_message_holds_a_unit_id_or_a_raw_value(world, ran) -> None:
    _, left, right, _ = world
    crossings = ran[2]
    assert {(c.sender, c.recipient) for c in crossings} >= {
        ("left", "right"),
        ("right", "left"),
        ("left", "gateway"),
        ("right", "gateway"),
    }
    units = set(left["person_id"]) | set(right["person_id"])
    costs = {f"{c:.2f}" for c in right["cost"]} | {str(round(c * 100)) for c in right["cost"]}
    for crossing in crossings:
        if crossing.step == "hello":  # an X25519 public key of this job, to seal shares to
            assert len(crossing.data) == 32
            continue
        text = crossing.data.decode("ascii")
        assert TARGET not in text
        assert not any(u in text for u in units)
        message = wire.decode(crossing.data)
        if isinstance(message, Payloads):
            # Group keys go to the gateway only (it releases them); values only as uniform shares.
            assert crossing.recipient == "gateway"
            assert not message.ciphertexts
            for key in message.group_keys:
                assert all(str(v) not in units for v in key)
        if isinstance(message, BlindedBatches):
            assert crossing.recipient in ("left", "right")
        if isinstance(message, ShareSumRequest):
            assert all(len(p) >= K for _, p in message.cells)  # only released cells are summed
        decoded = repr(message)
        assert not any(f"'{c}'" in decoded for c in costs)


def _visit_counts_from(gateway_view: list[Crossing]) -> list[int] | None:
    """The attack: the gateway carries the visits domain's tokens to the citizens domain, with the
    citizens domain's shares of every visitor's values; it adds them to its own shares (from the
    payloads) and reads each visitor's number of visits. None when the relayed shares are not
    shares it can add (the fix: they are sealed to the citizens domain)."""
    relayed = [wire.decode(c.data) for c in gateway_view if c.step == "blind" and c.recipient == "right"]
    payloads = [wire.decode(c.data) for c in gateway_view if c.step == "blind" and c.recipient == "gateway"]
    (blinded,) = [m for m in relayed if isinstance(m, BlindedBatches)]
    (own,) = [m for m in payloads if isinstance(m, Payloads) and m.origin is blinded.origin]
    counts: list[int] = []
    for helper, mine in zip(blinded.helper_shares, own.gateway_shares, strict=True):
        if len(helper) != len(mine):
            return None
        a = np.frombuffer(helper, dtype=np.uint64)
        b = np.frombuffer(mine, dtype=np.uint64)
        counts += [int(v) for v in (a + b).reshape(-1, own.slots)[:, 0] if v]
    return sorted(counts)


def test_the_gateway_cannot_add_the_shares_it_carries_to_its_own(world, ran) -> None:
    _, _, right, _ = world
    truth = sorted(right.groupby("person_id").size().tolist())
    assert _visit_counts_from(ran[2]) != truth
    assert _visit_counts_from(ran[2]) is None


@dataclass
class Blocking:
    """An inner executor whose rounds wait until cancelled (a cancel ends a waiting round at once)."""

    started: threading.Event = field(default_factory=threading.Event)
    cancelled: list[str] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    def run(self, spec: JobSpec) -> ResultTable:
        self.started.set()
        self.released.wait(10)
        raise ExecutionCancelled(f"job {spec.job_id} was cancelled")

    def cancel(self, job_id: str) -> bool:
        self.cancelled.append(job_id)
        self.released.set()
        return True

    def close(self) -> None:
        return None


def test_cancelling_a_cross_domain_job_stops_its_running_rounds(world) -> None:
    spec = world[0]
    inner = Blocking()
    placing = Placing(inner)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            placing.run(spec)
        except ExecutionCancelled as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert inner.started.wait(10)
    assert placing.cancel(spec.job_id) is True
    worker.join(10)
    assert outcome, "the job ended cancelled"
    assert inner.cancelled
    assert all(c.startswith(spec.job_id + "#") for c in inner.cancelled)
    placing.cancel(spec.job_id)  # once it ended, a cancel is the inner executor's, for that id alone
    assert inner.cancelled[-1] == spec.job_id
