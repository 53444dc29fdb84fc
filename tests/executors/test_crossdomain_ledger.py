"""The released-cohort ledger's sketches of cross-domain cells, on a real local executor: what they hold,
and what the exchange that makes them shows each party.

The gateway sketches each released cell from its people's tokens ``H(u)^(α·β)``, where ``α`` and ``β``
are the domains' keys of the scope lineage. The tests check that this is exactly the cell's set of
people (the test, holding both data keys, computes the same tokens from the plain join), that it is the
same in every job of the lineage and unrelated in another, and, as each domain would try, that nothing
a domain receives in the exchange can be linked to a person with every key that domain holds, or to the
same exchange in another job. The one linkage that remains is the gateway's, by design.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crypto.envelope import unseal
from crypto.keyring import LocalKeyring
from crypto.psi import Blinders, BlindingKey, blind, inverse, new_blinding_key, product, reblind
from executors.base import JobSpec, ResultTable
from executors.crossdomain import wire
from executors.crossdomain.gateway_party import Cell
from executors.crossdomain.job import PartyRound, Step
from executors.crossdomain.ledger import cell_sketches
from executors.crossdomain.messages import ReblindedBatches
from executors.crossdomain.padding import bucket
from executors.crossdomain.placed import Crossing, run_cross_domain
from executors.crossdomain.plan import Side
from executors.crossdomain.rounds import BLINDING_BYTES, PEOPLE_BYTES, lineage_key, state_aad, state_key
from executors.local import LocalExecutor
from policies.cohorts.sketch import CohortSketch, SketchRequest, element_key, sketch_of
from tests.executors.crossdomain_world import K
from tests.executors.test_crossdomain_placed import DATA_KEYS, Probe, world

__all__ = ["world"]  # the placed tests' deployment: visits (left) and citizens (right), two data keys

SECRET = bytes(range(32))  # the lineage's element secret, as the ledger service would derive it
REQUEST = SketchRequest(secret=SECRET, power_sums=K + 1, least=8)
DOMAIN_OF = {Side.LEFT: "health-bureau", Side.RIGHT: "civil-affairs"}


def _ledger_job(spec: JobSpec, *, job_id: str, lineage: str) -> JobSpec:
    assert spec.cross_domain is not None
    return replace(
        spec,
        job_id=job_id,
        cohorts=REQUEST,
        cross_domain=replace(spec.cross_domain, lineage=lineage),
    )


Ran = tuple[Probe, list[Crossing], ResultTable]


def _run(spec: JobSpec, keyring: Path) -> Ran:
    probe = Probe(LocalExecutor(key_provider=LocalKeyring.open(keyring), max_workers=2))
    crossings: list[Crossing] = []
    try:
        result = run_cross_domain(probe, spec, observe=crossings.append)
    finally:
        probe.close()
    return probe, crossings, result


@pytest.fixture(scope="module")
def runs(world: tuple[JobSpec, pd.DataFrame, pd.DataFrame, Path]) -> dict[str, Ran]:
    """Two jobs of lineage L1 (fresh job keys each, a fresh executor each: nothing shared in memory) and
    one of lineage L2."""
    spec, _, _, keyring = world
    return {
        job_id: _run(_ledger_job(spec, job_id=job_id, lineage=lineage), keyring)
        for job_id, lineage in (("xd-l1-a", "L1"), ("xd-l1-b", "L1"), ("xd-l2", "L2"))
    }


def _lineage_key(side: Side, lineage: str) -> BlindingKey:
    """A domain's lineage key, as only its own sandbox derives it (from its own data key)."""
    return lineage_key(lineage, DATA_KEYS[DOMAIN_OF[side]])


def _job_key(probe: Probe, side: Side) -> BlindingKey:
    """A domain's blinding key of one job, opened from its sealed round state with its own data key."""
    (spec,) = [s for s in probe.specs if s.party and s.party.side is side and s.party.step is Step.REBLIND]
    assert spec.party is not None
    own = state_key(spec.party, (DATA_KEYS[DOMAIN_OF[side]],))
    return BlindingKey(unseal(own, spec.party.sealed_state, aad=state_aad(spec.party))[:BLINDING_BYTES])


def _sketches(result: ResultTable) -> dict[str, CohortSketch]:
    table = result.to_pandas()
    pairs = zip(table["district"], table["_sbx_sketch"], strict=True)
    return {str(d): CohortSketch.from_bytes(bytes(b)) for d, b in pairs}


def _received(crossings: list[Crossing], side: Side) -> set[bytes]:
    """The tokens a domain received in the ledger's exchange."""
    return _exchanged(crossings, recipient=side.value)


def _exchanged(crossings: list[Crossing], *, recipient: str = "", sender: str = "") -> set[bytes]:
    """Every token of the unblind exchange to ``recipient`` (or from ``sender``)."""
    batches = _unblind_messages(crossings, recipient=recipient, sender=sender)
    return {token for batch in batches for token in batch}


def test_each_cells_sketch_is_exactly_its_matched_people(world, runs) -> None:
    _, left, right, _ = world
    _, _, result = runs["xd-l1-a"]
    both = product(_lineage_key(Side.LEFT, "L1"), _lineage_key(Side.RIGHT, "L1"))
    joined = left.merge(right, on="person_id").drop_duplicates("person_id")
    key = element_key(SECRET)
    for district, sketch in _sketches(result).items():
        people = sorted(joined.loc[joined["district"] == district, "person_id"])
        tokens = np.array(blind(both, people), dtype=object)
        assert sketch == sketch_of(tokens, key, REQUEST.power_sums, REQUEST.least)
        assert sketch.units >= K


def test_a_cells_sketch_is_the_same_in_every_job_of_its_lineage_and_unrelated_in_another(runs) -> None:
    first, again, other = (_sketches(runs[j][2]) for j in ("xd-l1-a", "xd-l1-b", "xd-l2"))
    assert first == again  # fresh job keys, fresh processes: the ledger sees a repeat as a repeat
    assert first.keys() == other.keys()
    for district, sketch in first.items():
        assert sketch.units == other[district].units
        assert not set(sketch.least) & set(other[district].least)  # no element shared across lineages


def test_a_domain_cannot_link_what_it_unblinds_to_a_person_with_every_key_it_holds(world, runs) -> None:
    """Each domain tries all unit ids of both domains under its lineage key, its job key, and both
    multiplied, against every token it received in the ledger's exchange and every token it sent back."""
    _, left, right, _ = world
    units = sorted(set(left["person_id"]) | set(right["person_id"]))
    probe, crossings, _ = runs["xd-l1-a"]
    for side in Side:
        own = _lineage_key(side, "L1")
        guesses: set[bytes] = set()
        for key in (own, _job_key(probe, side)):
            guesses.update(blind(key, units))
        seen = _received(crossings, side) | _exchanged(crossings, sender=side.value)
        assert seen
        assert not seen & guesses
        text = b"".join(c.data for c in crossings if c.step == Step.UNBLIND.value).decode("ascii")
        assert not any(u in text for u in units)


def _reblinded_by(crossings: list[Crossing], side: Side) -> set[bytes]:
    """The doubly blinded tokens ``side`` computed for the other domain's people (and sent on)."""
    out: set[bytes] = set()
    for crossing in crossings:
        if crossing.step == Step.REBLIND.value and crossing.sender == side.value:
            message = wire.decode(crossing.data)
            assert isinstance(message, ReblindedBatches)
            out.update(t for batch in message.batches for t in batch)
    return out


def test_a_domain_cannot_tell_which_of_the_tokens_it_reblinded_matched(runs) -> None:
    """Each domain re-blinds the other's people, so it knows their doubly blinded tokens, in the other's
    batches. Were the gateway to send the matched tokens as they are, the domain would find them among
    those it computed and learn which of the other domain's people (by batch position) are matched; the
    gateway's fresh factor leaves it nothing to find."""
    _, crossings, _ = runs["xd-l1-a"]
    matched = _reblinded_by(crossings, Side.LEFT) & _reblinded_by(crossings, Side.RIGHT)
    for side in Side:
        own = _reblinded_by(crossings, side)
        assert matched & own  # the weaker exchange: the matched tokens themselves
        assert not _received(crossings, side) & own


def test_a_domain_cannot_link_the_exchange_across_jobs_but_the_gateway_can(runs) -> None:
    """The linkage the ledger needs, and who has it: the gateway's tokens of a person are the same in both
    jobs of the lineage (by design); what each domain receives shares nothing between them."""
    for side in Side:
        first = _received(runs["xd-l1-a"][1], side)
        again = _received(runs["xd-l1-b"][1], side)
        assert first
        assert again
        assert not first & again
    assert _sketches(runs["xd-l1-a"][2]) == _sketches(runs["xd-l1-b"][2])


def test_a_domain_learns_the_released_cells_people_only_to_within_the_padding(runs) -> None:
    _, crossings, result = runs["xd-l1-a"]
    released = int(result.to_pandas()["_sbx_units"].sum())  # a person is in one district: distinct
    for side in Side:
        assert len(_received(crossings, side)) == bucket(released)


def test_without_a_ledger_no_exchange_runs_and_no_sketch_is_made(world) -> None:
    spec, _, _, keyring = world
    probe, crossings, result = _run(replace(spec, job_id="xd-no-ledger"), keyring)
    assert not [s for s in probe.specs if s.party and s.party.step is Step.UNBLIND]
    assert "_sbx_sketch" not in result.to_arrow().column_names
    assert not [c for c in crossings if c.step == Step.UNBLIND.value]


def test_with_no_cell_reaching_k_no_token_is_unblinded(world) -> None:
    spec, _, _, keyring = world
    ledger = _ledger_job(spec, job_id="xd-none-released", lineage="L1")
    assert ledger.cross_domain is not None
    probe, crossings, result = _run(
        replace(ledger, cross_domain=replace(ledger.cross_domain, min_units=10_000)), keyring
    )
    assert result.row_count == 0
    assert not [s for s in probe.specs if s.party and s.party.step is Step.UNBLIND]
    assert not [c for c in crossings if c.step == Step.UNBLIND.value]


class _Greedy(Probe):
    """A gateway that asks a domain to strip its factor from more than the released cells' tokens:
    ``extra`` random points on top of the honest request; or, with ``again``, after each honest unblind
    round a second request with the same sealed state: the honest one again, or with ``overfill`` as
    many fresh random points as keep that request alone within the domain's padded people but take the
    two past them. ``answers`` keeps what came back from every unblind round that answered, ``refused``
    what the replays were told."""

    def __init__(
        self, inner: LocalExecutor, *, extra: int = 0, again: bool = False, overfill: bool = False
    ) -> None:
        super().__init__(inner)
        self.extra, self.again, self.overfill = extra, again, overfill
        self.answers: list[ResultTable] = []
        self.refused: list[str] = []

    def run(self, spec: JobSpec) -> ResultTable:
        party = spec.party
        if party is None or party.step is not Step.UNBLIND:
            return super().run(spec)
        asked = wire.decode(party.incoming)
        assert isinstance(asked, ReblindedBatches)
        if self.extra:
            points = blind(BlindingKey(bytes(range(1, 33))), [f"probe-{i}" for i in range(self.extra)])
            padded = ReblindedBatches(asked.origin, (asked.batches[0] + tuple(points),))
            spec = replace(spec, party=replace(party, incoming=wire.encode(padded)))
        result = super().run(spec)
        self.answers.append(result)
        if self.again:
            replay = spec
            if self.overfill:
                honest = sum(len(batch) for batch in asked.batches)
                count = bucket(_sealed_people(party)) - honest + 1  # alone within the cap, together past it
                points = blind(BlindingKey(bytes(range(2, 34))), [f"fill-{i}" for i in range(count)])
                fill = ReblindedBatches(asked.origin, (tuple(points),))
                replay = replace(spec, party=replace(party, incoming=wire.encode(fill)))
            try:
                self.answers.append(super().run(replace(replay, job_id=spec.job_id + "-again")))
            except Exception as exc:  # the domain's refusal, as its executor reports it
                self.refused.append(str(exc))
        return result


def _sealed_people(party: PartyRound) -> int:
    """The number of distinct people a domain's BLIND round sealed (opened as the test holds its key)."""
    own = state_key(party, (DATA_KEYS[DOMAIN_OF[party.side]],))
    state = unseal(own, party.sealed_state, aad=state_aad(party))
    return int.from_bytes(state[BLINDING_BYTES : BLINDING_BYTES + PEOPLE_BYTES], "big")


def _greedy_run(spec: JobSpec, keyring: Path, probe: _Greedy) -> Exception | None:
    try:
        run_cross_domain(probe, spec)
    except Exception as exc:  # the refusal ends the job, as any failed round does
        return exc
    finally:
        probe.close()
    return None


def test_a_domain_strips_no_more_tokens_than_its_own_people_can_fill(world) -> None:
    """A domain's people bound the people of released cells (each is matched in it): a request for more
    tokens than that, padded, is refused before any is stripped, whatever the gateway sends."""
    spec, left, right, keyring = world
    people = max(left["person_id"].nunique(), right["person_id"].nunique())
    greedy = _Greedy(LocalExecutor(key_provider=LocalKeyring.open(keyring), max_workers=2), extra=2 * people)
    failed = _greedy_run(_ledger_job(spec, job_id="xd-greedy", lineage="L1"), keyring, greedy)
    assert failed is not None
    assert "more tokens" in str(failed)
    assert not greedy.answers  # no domain stripped anything


def test_a_sealed_state_serves_two_unblind_rounds_and_no_third(world) -> None:
    """The exchange strips in two rounds per domain (halves, then swapped). Replaying a domain's sealed
    state to another round (to strip its factor from other tokens) uses up the second; the honest
    swapped round then comes third and is refused: the job fails and nothing past two rounds answers."""
    spec, _, _, keyring = world
    twice = _Greedy(LocalExecutor(key_provider=LocalKeyring.open(keyring), max_workers=2), again=True)
    failed = _greedy_run(_ledger_job(spec, job_id="xd-twice", lineage="L1"), keyring, twice)
    assert failed is not None
    assert "rounds per job" in str(failed)
    assert len(twice.answers) <= 2 * len(Side)  # each domain: its honest first round and one replay


def test_the_points_of_a_sealed_states_rounds_count_together_against_the_cap(world) -> None:
    """A second request that alone stays within the domain's padded people but together with the first
    goes past them is refused: the cap holds for the sealed state, not per request."""
    spec, _, _, keyring = world
    executor = LocalExecutor(key_provider=LocalKeyring.open(keyring), max_workers=2)
    greedy = _Greedy(executor, again=True, overfill=True)
    failed = _greedy_run(_ledger_job(spec, job_id="xd-overfill", lineage="L1"), keyring, greedy)
    assert failed is not None
    assert len(greedy.refused) == len(Side)  # each domain refused its replay
    assert all("more tokens" in reason for reason in greedy.refused)
    assert len(greedy.answers) == len(Side)  # only the honest first halves answered


def _unblind_messages(
    crossings: list[Crossing], *, recipient: str = "", sender: str = ""
) -> list[tuple[bytes, ...]]:
    """The batches of the unblind exchange to ``recipient`` (or from ``sender``), in the order sent."""
    out: list[tuple[bytes, ...]] = []
    for crossing in crossings:
        if crossing.step != Step.UNBLIND.value:
            continue
        if (recipient and crossing.recipient != recipient) or (sender and crossing.sender != sender):
            continue
        message = wire.decode(crossing.data)
        assert isinstance(message, ReblindedBatches)
        out.extend(message.batches)
    return out


def test_the_domains_take_their_factors_out_of_halves_at_once_then_swap(runs) -> None:
    """The unblind exchange in two steps: each domain gets one half of the gateway's points, then the
    half the other domain returned, as the gateway carried it, and the halves cover every point once."""
    _, crossings, _ = runs["xd-l1-a"]
    got = {side: _unblind_messages(crossings, recipient=side.value) for side in Side}
    sent = {side: _unblind_messages(crossings, sender=side.value) for side in Side}
    for side in Side:
        assert len(got[side]) == len(sent[side]) == 2
        first, second = got[side]
        assert second == sent[side.other][0]  # the other domain's first answer, carried as it is
        assert not set(first) & set(got[side.other][0])  # the gateway's halves are disjoint
    halves = len(got[Side.LEFT][0]) + len(got[Side.RIGHT][0])
    assert halves == len(set(got[Side.LEFT][0]) | set(got[Side.RIGHT][0]))


def test_the_half_a_domain_gets_from_the_other_links_to_nothing_it_holds(world, runs) -> None:
    """The message the swap adds: what the other domain returned, which no longer carries the other
    domain's factor. The domain applies every key it holds (its lineage key, its job key, the factor
    it takes out, their inverses) and compares with every token it made or saw in the job and with
    every unit id blinded under its keys: nothing matches, since the gateway's fresh factor is on (its
    own second answer is this half with its factor out, which it sends to the gateway)."""
    _, left, right, _ = world
    units = sorted(set(left["person_id"]) | set(right["person_id"]))
    probe, crossings, _ = runs["xd-l1-a"]
    for side in Side:
        lineage, job = _lineage_key(side, "L1"), _job_key(probe, side)
        strip = product(lineage, inverse(job))
        keys = [lineage, job, strip, inverse(lineage), inverse(job), inverse(strip)]
        from_other = list(_unblind_messages(crossings, recipient=side.value)[1])
        tried = {point for key in keys for point in reblind(key, from_other)} | set(from_other)
        known = _reblinded_by(crossings, side) | _blinded_by(crossings, side)
        known |= set(_unblind_messages(crossings, recipient=side.value)[0])
        known |= set(_unblind_messages(crossings, sender=side.value)[0])  # its second is from_other^strip
        for key in (lineage, job):
            known.update(blind(key, units))
        assert not tried & known


def _blinded_by(crossings: list[Crossing], side: Side) -> set[bytes]:
    """The tokens ``side`` blinded for its own people (sent to the other domain)."""
    out: set[bytes] = set()
    for crossing in crossings:
        if (
            crossing.step == Step.BLIND.value
            and crossing.sender == side.value
            and crossing.recipient != "gateway"
        ):
            message = wire.decode(crossing.data)
            out.update(t for batch in getattr(message, "batches", ()) for t in batch)
    return out


def test_the_gateways_factor_over_worker_processes_gives_the_same_sketches() -> None:
    """``cell_sketches`` with the gateway's group operations over two worker processes: each cell's
    sketch is that of its people's ``H(u)^(α·β)``, as with everything run in one process."""
    alpha, beta, r, s = (new_blinding_key() for _ in range(4))
    units = [f"P{i:04d}" for i in range(60)]
    tokens = blind(product(product(alpha, r), product(beta, s)), units)
    cells = [
        Cell(0, 0, tuple(range(0, 25)), tuple(range(25))),
        Cell(0, 1, tuple(range(25, 60)), tuple(range(35))),
    ]
    factors = {Side.LEFT: r, Side.RIGHT: s}

    def strip(side: Side, points: tuple[bytes, ...]) -> tuple[bytes, ...]:
        return reblind(inverse(factors[side]), points)

    timings: dict[str, float] = {}
    with Blinders(2, min_items=1) as workers:
        spread = cell_sketches(
            cells, [tokens], request=REQUEST, strip=strip, blinders=workers, timings=timings
        )
        assert workers.worker_cpu_s > 0
    here = cell_sketches(cells, [tokens], request=REQUEST, strip=strip)
    stable = blind(product(alpha, beta), units)
    key = element_key(SECRET)
    expected = [
        sketch_of(np.array(stable[a:b], dtype=object), key, REQUEST.power_sums, REQUEST.least).to_bytes()
        for a, b in ((0, 25), (25, 60))
    ]
    assert spread == here == expected
    assert {"ledger_factor_s", "ledger_strip_s", "ledger_unfactor_s", "ledger_sketch_s"} <= set(timings)


def test_what_a_domain_returns_from_the_other_domains_half_is_not_the_stable_token(world, runs) -> None:
    """After the swap a domain's second answer has both domains' factors out: were the gateway's own
    fresh factor not on it, it would be ``H(u)^(α·β)``, the token the ledger keeps, the same in every job
    of the lineage, in a domain's hands. It is neither that token nor shared between two jobs."""
    _, left, right, _ = world
    units = sorted(set(left["person_id"]) | set(right["person_id"]))
    stable = set(blind(product(_lineage_key(Side.LEFT, "L1"), _lineage_key(Side.RIGHT, "L1")), units))
    for side in Side:
        first = set(_unblind_messages(runs["xd-l1-a"][1], sender=side.value)[1])
        again = set(_unblind_messages(runs["xd-l1-b"][1], sender=side.value)[1])
        assert first
        assert not first & stable
        assert not first & again
