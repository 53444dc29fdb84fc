"""The gateway's cohort sketches of cross-domain cells, for the released-cohort ledger.

No party holds a cross-domain cell's set of people in the clear, so the gateway sketches what it does
hold: each matched person's doubly blinded token. The tokens the protocol matches on are fresh per job
(``H(u)^(a·b)``), so on their own they would make every job's cohorts look new. Under a ledger each
domain blinds instead with ``a = α·r``: ``α`` its key of the scope lineage (derived in its own sandbox
from its dataset's ledger key, the same for every version, and the lineage id, ``rounds.lineage_key``)
and ``r`` a fresh factor of the job.
Every token that crosses during the protocol is then as fresh as before (``r`` is uniform). After the
match, for the people of released cells only, the factors are taken out in one more exchange:

1. the gateway raises the distinct tokens of released cells, ``H(u)^(α·r·β·s)``, to its own fresh
   factor ``δ``, pads them with random points to a bucket size (``padding.bucket``) and shuffles them;
2. each domain raises what it is sent to its ``r^-1`` (or ``s^-1``), order kept: the left domain one
   half and the right domain the other, at once, then each the half the other returned (exponents
   commute, so the points are the same as one domain after the other, in half the time);
3. the gateway raises them to ``δ^-1``: ``H(u)^(α·β)``, the same for a person in every job of the
   lineage, and sketches each cell's tokens like the units of a single-domain cell
   (``policies.cohorts.sketch``: SipHash under the lineage's element secret, then power sums).

The gateway's own group operations (steps 1 and 3) run over the cores of its machine
(``crypto.psi.Blinders``); a padding point is blinded under a fresh key of its own, as uniform as a
token raised to ``δ``, and so is neither raised to ``δ`` nor brought back.

What each party sees: a domain sees points carrying the gateway's fresh ``δ`` and the domains' fresh
factors (its own, and in the first half the other's), so nothing it can link to its own people, to
the other domain's, or across jobs; their
padded number says how many people the released cells hold (to within 12.5 %), which the released
counts say anyway. The gateway sees ``H(u)^(α·β)`` for the people of released cells: still no unit id
and nothing it can invert (it holds neither ``α`` nor ``β``), but the same unknown person has the same
token in each job of the lineage. That linkage is what the ledger needs; it is limited to people of
released cells, to one lineage, and to the gateway, which already decides every cell (docs/
cross-domain.md, "What still leaks").
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from crypto.psi import Blinders, inverse, new_blinding_key
from executors.crossdomain.errors import CrossDomainProtocolError
from executors.crossdomain.gateway_party import Cell
from executors.crossdomain.padding import bucket
from executors.crossdomain.plan import Side
from policies.cohorts.sketch import SketchRequest, element_key, sketch_of

#: A domain's half of step 2: its fresh factor taken out of ``tokens``, order kept.
Strip = Callable[[Side, tuple[bytes, ...]], tuple[bytes, ...]]
_DUMMY_BYTES = 16


def cell_sketches(
    cells: Sequence[Cell],
    left_batches: Sequence[Sequence[bytes]],
    *,
    request: SketchRequest,
    strip: Strip,
    blinders: Blinders | None = None,
    timings: dict[str, float] | None = None,
) -> list[bytes]:
    """The cohort sketch (``CohortSketch.to_bytes``) of each of ``cells``, in order, from the tokens
    of their matched people in the left domain's re-blinded batches; ``strip`` runs step 2 in each
    domain (called from two threads at once: the halves). No cell, no exchange.

    ``blinders`` spreads the gateway's own group operations (its factor on, then off) over the cores;
    ``timings`` gets the seconds of each stage (``ledger_factor_s``, ``ledger_strip_s``,
    ``ledger_unfactor_s``, ``ledger_sketch_s``)."""
    members = [tuple(left_batches[cell.left_batch][p] for p in cell.left_positions) for cell in cells]
    distinct = sorted({token for tokens in members for token in tokens})
    if not distinct:
        return []
    ec = blinders or Blinders(1)
    clock = _Clock(timings)
    factor = new_blinding_key()
    # Random points, like any token to a domain: the padded count says the people only to within 12.5 %.
    # A point blinded under a fresh key is as uniform as one raised to the factor too, so the padding
    # skips the factor (and, on the way back, its removal): two group operations fewer per dummy.
    extra = bucket(len(distinct)) - len(distinct)
    dummies = ec.blind(new_blinding_key(), [secrets.token_hex(_DUMMY_BYTES) for _ in range(extra)])
    points = [*ec.reblind(factor, distinct), *dummies]
    order = _shuffled(len(points))
    sent = tuple(points[i] for i in order)
    clock.lap("ledger_factor_s")
    back = _stripped(sent, strip)
    clock.lap("ledger_strip_s")
    # ``order[j]`` is where the j-th point sent came from: below ``len(distinct)``, a person's token.
    real = sorted((i, j) for j, i in enumerate(order) if i < len(distinct))
    stable = dict(zip(distinct, ec.reblind(inverse(factor), [back[j] for _, j in real]), strict=True))
    clock.lap("ledger_unfactor_s")
    key = element_key(request.secret)
    sketches = [
        sketch_of(
            np.array([stable[t] for t in tokens], dtype=object), key, request.power_sums, request.least
        ).to_bytes()
        for tokens in members
    ]
    clock.lap("ledger_sketch_s")
    return sketches


def _stripped(sent: tuple[bytes, ...], strip: Strip) -> tuple[bytes, ...]:
    """Both domains' factors taken out of ``sent``, order kept, in two steps that keep both domains
    busy: each takes its factor out of one half, at once, then out of the half the other returned.
    Exponents commute, so the order of the two factors does not change the points. What a domain
    receives in the second step carries the gateway's fresh factor still (and its own job's factor), as
    in the first: nothing it can link to its people, the other's, or another job."""
    half = len(sent) // 2
    first, second = sent[:half], sent[half:]
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="xd-unblind") as pool:
        left = pool.submit(strip, Side.LEFT, first)
        right = pool.submit(strip, Side.RIGHT, second)
        first_left, second_right = _checked(left.result(), first), _checked(right.result(), second)
        left = pool.submit(strip, Side.LEFT, second_right)
        right = pool.submit(strip, Side.RIGHT, first_left)
        return _checked(right.result(), first) + _checked(left.result(), second)


def _shuffled(n: int) -> list[int]:
    """A uniformly random order of ``range(n)`` from the operating system's secure source."""
    order = list(range(n))
    secrets.SystemRandom().shuffle(order)
    return order


class _Clock:
    def __init__(self, timings: dict[str, float] | None) -> None:
        self._timings = timings
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self._timings is not None:
            self._timings[name] = self._timings.get(name, 0.0) + now - self._last
        self._last = now


def _checked(tokens: tuple[bytes, ...], sent: Sequence[bytes]) -> tuple[bytes, ...]:
    if len(tokens) != len(sent):
        raise CrossDomainProtocolError("a domain's unblinded tokens do not answer the gateway's")
    return tokens
