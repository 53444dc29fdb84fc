"""The gateway's cohort sketches of cross-domain cells, for the released-cohort ledger.

No party holds a cross-domain cell's set of people in the clear, so the gateway sketches what it does
hold: each matched person's doubly blinded token. The tokens the protocol matches on are fresh per job
(``H(u)^(a·b)``), so on their own they would make every job's cohorts look new. Under a ledger each
domain blinds instead with ``a = α·r``: ``α`` its key of the scope lineage (derived in its own sandbox
from its own data key and the lineage id, ``rounds.lineage_key``) and ``r`` a fresh factor of the job.
Every token that crosses during the protocol is then as fresh as before (``r`` is uniform). After the
match, for the people of released cells only, the factors are taken out in one more exchange:

1. the gateway raises the distinct tokens of released cells, ``H(u)^(α·r·β·s)``, to its own fresh
   factor ``δ``, pads them with random points to a bucket size (``padding.bucket``) and shuffles them;
2. the left domain raises them to ``r^-1`` (order kept), then the right domain to ``s^-1``;
3. the gateway raises them to ``δ^-1``: ``H(u)^(α·β)``, the same for a person in every job of the
   lineage, and sketches each cell's tokens like the units of a single-domain cell
   (``policies.cohorts.sketch``: SipHash under the lineage's element secret, then power sums).

What each party sees: a domain sees points carrying the gateway's fresh ``δ`` and the other domain's
fresh factor, so nothing it can link to its own people, to the other domain's, or across jobs; their
padded number says how many people the released cells hold (to within 12.5 %), which the released
counts say anyway. The gateway sees ``H(u)^(α·β)`` for the people of released cells: still no unit id
and nothing it can invert (it holds neither ``α`` nor ``β``), but the same unknown person has the same
token in each job of the lineage. That linkage is what the ledger needs; it is limited to people of
released cells, to one lineage, and to the gateway, which already decides every cell (docs/
cross-domain.md, "What still leaks").
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

import numpy as np

from crypto.psi import blind, inverse, new_blinding_key, reblind
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
) -> list[bytes]:
    """The cohort sketch (``CohortSketch.to_bytes``) of each of ``cells``, in order, from the tokens
    of their matched people in the left domain's re-blinded batches; ``strip`` runs step 2 in each
    domain. No cell, no exchange."""
    members = [tuple(left_batches[cell.left_batch][p] for p in cell.left_positions) for cell in cells]
    distinct = sorted({token for tokens in members for token in tokens})
    if not distinct:
        return []
    # Random points, like any token to a domain: the padded count says the people only to within 12.5 %.
    extra = bucket(len(distinct)) - len(distinct)
    padded = [*distinct, *blind(new_blinding_key(), [secrets.token_hex(_DUMMY_BYTES) for _ in range(extra)])]
    secrets.SystemRandom().shuffle(padded)
    factor = new_blinding_key()
    sent = reblind(factor, padded)
    back = strip(Side.RIGHT, _checked(strip(Side.LEFT, sent), sent))
    stable = dict(zip(padded, reblind(inverse(factor), _checked(back, sent)), strict=True))
    key = element_key(request.secret)
    return [
        sketch_of(
            np.array([stable[t] for t in tokens], dtype=object), key, request.power_sums, request.least
        ).to_bytes()
        for tokens in members
    ]


def _checked(tokens: tuple[bytes, ...], sent: Sequence[bytes]) -> tuple[bytes, ...]:
    if len(tokens) != len(sent):
        raise CrossDomainProtocolError("a domain's unblinded tokens do not answer the gateway's")
    return tokens
