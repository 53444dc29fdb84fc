"""Attacks on a cross-domain job by each honest-but-curious party, from everything it receives.

Each test names the fact a party wants, gathers that party's whole view (the transcript of what it
received, plus its own keys and rows), runs the attack, and asserts it fails. Each attack is first shown
to work against a view that a weaker protocol would give (the classic two-party exchange, in which a
party gets its own doubly blinded tokens back in order, or a threshold of 1), so a passing test means the
protocol withholds the fact, not that the attack is toothless. Today's path (both domains' rows
decrypted into one sandbox) hands every fact below to that sandbox outright.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from crypto.paillier import PaillierKeyPair, new_keypair
from crypto.psi import BlindingKey, blind, new_blinding_key, reblind
from executors.crossdomain import CrossDomainRun, Gateway, Protection, Side, new_party, run_in_process
from executors.crossdomain.messages import (
    BlindedBatches,
    DecryptRequest,
    Message,
    Payloads,
    ReblindedBatches,
    ShareSumRequest,
)
from executors.crossdomain.records import SLOTS_PER_SUM
from tests.executors.crossdomain_world import COUNT_ONLY, DEMO_PLAN, TARGET, K, citizens, visits

CITIZENS, VISITS = citizens(60), visits(150, people=80)


@pytest.fixture(scope="module")
def keys() -> dict[Side, BlindingKey]:
    return {Side.LEFT: new_blinding_key(), Side.RIGHT: new_blinding_key()}


@pytest.fixture(scope="module")
def paillier() -> PaillierKeyPair:
    return new_keypair()


def _run(keys: dict[Side, BlindingKey], paillier: PaillierKeyPair, *, min_units: int) -> CrossDomainRun:
    return run_in_process(
        new_party(DEMO_PLAN, Side.LEFT, CITIZENS, blinding=keys[Side.LEFT]),
        new_party(DEMO_PLAN, Side.RIGHT, VISITS, blinding=keys[Side.RIGHT], paillier=paillier),
        Gateway(DEMO_PLAN, min_units=min_units),
    )


@pytest.fixture(scope="module")
def run(keys: dict[Side, BlindingKey], paillier: PaillierKeyPair) -> CrossDomainRun:
    return _run(keys, paillier, min_units=K)


def _tokens(message: BlindedBatches | ReblindedBatches) -> set[bytes]:
    return {token for batch in message.batches for token in batch}


def _sent_by_other(run: CrossDomainRun, attacker: Side) -> BlindedBatches:
    (message,) = [m for m in run.transcript.received_by(attacker.value) if isinstance(m, BlindedBatches)]
    return message


def _own_doubled_in_order(run: CrossDomainRun, attacker: Side, key: BlindingKey) -> bytes:
    """The classic two-party view: the attacker's own tokens come back doubly blinded, in the order it
    sent them, so it knows which one is the target's."""
    (own,) = [
        m
        for m in run.transcript.received_by("gateway")
        if isinstance(m, ReblindedBatches) and m.origin is attacker
    ]
    sent = next(
        m for m in run.transcript.received_by(_other(attacker).value) if isinstance(m, BlindedBatches)
    )
    target = blind(key, [TARGET])[0]
    for sent_batch, doubled_batch in zip(sent.batches, own.batches, strict=True):
        if target in sent_batch:
            return doubled_batch[sent_batch.index(target)]
    raise AssertionError("the target is one of the attacker's own units")


def _other(side: Side) -> Side:
    return Side.RIGHT if side is Side.LEFT else Side.LEFT


@pytest.mark.parametrize(
    "attacker",
    [Side.LEFT, Side.RIGHT],
    ids=["civil-affairs learns whether P0042 visited a clinic", "health learns whether P0042 is a citizen"],
)
def test_a_domain_cannot_tell_whether_its_own_member_is_in_the_other_domain(
    run: CrossDomainRun, keys: dict[Side, BlindingKey], attacker: Side
) -> None:
    key = keys[attacker]
    theirs = _tokens(_sent_by_other(run, attacker))
    theirs_doubled = set(reblind(key, sorted(theirs)))
    # The attack works on the classic view: the target's own doubled token is among theirs, doubled.
    assert _own_doubled_in_order(run, attacker, key) in theirs_doubled
    # On its real view, every token the attacker can make for the target is absent from what it holds.
    made = blind(key, [TARGET]) + reblind(key, blind(key, [TARGET]))
    assert set(made).isdisjoint(theirs | theirs_doubled)


@pytest.mark.parametrize("attacker", [Side.LEFT, Side.RIGHT])
def test_a_domain_cannot_invert_the_tokens_it_receives_by_trying_every_unit(
    run: CrossDomainRun, keys: dict[Side, BlindingKey], attacker: Side
) -> None:
    universe = [f"P{i:04d}" for i in range(300)]
    theirs = _tokens(_sent_by_other(run, attacker))
    own_guess = set(blind(keys[attacker], universe))
    # The dictionary attack recovers tokens made under the attacker's own key...
    assert set(blind(keys[attacker], CITIZENS["person_id"].tolist())) <= own_guess
    # ...and none of the other domain's, which carry a key it lacks.
    assert own_guess.isdisjoint(theirs)


def _leaves(message: Message) -> Iterator[object]:
    for value in vars(message).values():
        yield from _flatten(value)


def _flatten(value: object) -> Iterator[object]:
    if isinstance(value, tuple):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


@pytest.mark.parametrize("party", ["left", "right", "gateway"])
def test_no_unit_id_and_no_value_reaches_any_party(run: CrossDomainRun, party: str) -> None:
    units = set(CITIZENS["person_id"]) | set(VISITS["person_id"])
    leaves = [leaf for m in run.transcript.received_by(party) for leaf in _leaves(m)]
    strings = {leaf for leaf in leaves if isinstance(leaf, str)}
    small = {leaf for leaf in leaves if isinstance(leaf, int) and not isinstance(leaf, bool) and leaf < 2**64}
    tokens = [leaf for leaf in leaves if isinstance(leaf, bytes)]
    assert strings.isdisjoint(units)
    assert not any(unit.encode() in token for unit in units for token in tokens)
    # Strings: group keys, to the gateway only (it releases them). Small numbers: slot counts only (the
    # rows, then per summed column its positive and negative parts and its non-NULL count).
    assert strings <= ({*CITIZENS["district"], "left", "right"} if party == "gateway" else {"left", "right"})
    assert small <= {1, 1 + SLOTS_PER_SUM}


def test_the_gateway_cannot_learn_p0042s_visit_costs_from_a_cell_below_k(
    keys: dict[Side, BlindingKey], paillier: PaillierKeyPair, run: CrossDomainRun
) -> None:
    """P0042 is Tiny's only citizen: the Tiny cell's total cost is P0042's. The gateway learns a cell's
    sums only from the masked replies to its decrypt requests, which cover cells of ``min_units``."""
    target_cents = round(VISITS.loc[VISITS["person_id"] == TARGET, "cost"].sum() * 100)

    def learned(view: CrossDomainRun) -> set[int]:
        (request,) = [m for m in view.transcript.received_by("right") if isinstance(m, DecryptRequest)]
        decrypted = view.table["total_cost"].dropna()
        assert len(decrypted) == len(request.ciphertexts)
        return {round(v * 100) for v in decrypted}

    # With a threshold of 1 the Tiny cell is decrypted, and the attack reads P0042's total.
    assert target_cents in learned(_run(keys, paillier, min_units=1))
    assert target_cents not in learned(run)


def test_the_health_bureau_cannot_tell_one_citizen_in_a_district_from_two() -> None:
    """The fact: whether Tiny has a second citizen. Batch sizes are padded to buckets of at least 8."""
    one = citizens(60)
    two = pd.concat([one, pd.DataFrame({"person_id": ["P9999"], "district": ["Tiny"]})], ignore_index=True)

    def sizes(rows: pd.DataFrame) -> list[int]:
        run = run_in_process(
            new_party(COUNT_ONLY, Side.LEFT, rows),
            new_party(COUNT_ONLY, Side.RIGHT, VISITS),
            Gateway(COUNT_ONLY, min_units=K),
        )
        return sorted(len(batch) for batch in _sent_by_other(run, Side.RIGHT).batches)

    assert sizes(one) == sizes(two)
    assert all(size >= 8 for size in sizes(one))


@pytest.fixture(scope="module")
def shared_run(keys: dict[Side, BlindingKey]) -> CrossDomainRun:
    return run_in_process(
        new_party(DEMO_PLAN, Side.LEFT, CITIZENS, blinding=keys[Side.LEFT], protection=Protection.SHARES),
        new_party(DEMO_PLAN, Side.RIGHT, VISITS, blinding=keys[Side.RIGHT], protection=Protection.SHARES),
        Gateway(DEMO_PLAN, min_units=K),
    )


def test_the_domain_holding_shares_cannot_read_p0042s_costs_without_the_gateway(
    shared_run: CrossDomainRun, keys: dict[Side, BlindingKey]
) -> None:
    """Under secret sharing, civil-affairs holds one share of each visitor's values. Grant it even the
    position of P0042's token (which it cannot find: the token is blinded by the health bureau's key):
    its share is uniform; only with the gateway's share (collusion, outside the threat model) is it the
    value."""
    target_cents = round(VISITS.loc[VISITS["person_id"] == TARGET, "cost"].sum() * 100)
    received = _sent_by_other(shared_run, Side.LEFT)
    (payload,) = [
        m
        for m in shared_run.transcript.received_by("gateway")
        if isinstance(m, Payloads) and m.origin is Side.RIGHT
    ]
    token = blind(keys[Side.RIGHT], [TARGET])[0]
    batch = next(i for i, tokens in enumerate(received.batches) if token in tokens)
    position = received.batches[batch].index(token)

    def share(raw: bytes) -> np.ndarray:
        return np.frombuffer(raw, dtype=np.uint64).reshape(len(received.batches[batch]), -1)[position]

    held = share(received.helper_shares[batch])
    assert target_cents not in held.tolist()
    assert (held + share(payload.gateway_shares[batch]))[1] == target_cents


def test_the_domain_holding_shares_learns_only_the_released_cells_sizes(shared_run: CrossDomainRun) -> None:
    (request,) = [m for m in shared_run.transcript.received_by("left") if isinstance(m, ShareSumRequest)]
    released = shared_run.table[shared_run.table["_sbx_units"] >= K]["patients"].tolist()
    assert sorted(len(positions) for _, positions in request.cells) == sorted(released)
