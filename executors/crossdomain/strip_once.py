"""A domain strips its job factor once: the record its executor keeps of the unblind rounds it has run.

Under the released-cohort ledger a domain takes its fresh factor ``r`` out of the points the gateway
sends (``rounds._unblinded``). Its blinding key comes back to it sealed, carried by the gateway, which
could replay the same sealed state to further unblind rounds and have other points stripped with the
same factor: stable lineage tokens for people of cells that were not released. The sealed state cannot
say it was used, so the executor that unwraps the domain's data key for the round keeps the record.

The exchange strips in two rounds per domain (``executors.crossdomain.ledger._stripped``: one half of
the points, then the half the other domain returned), so a sealed state may serve two unblind rounds and
no more, and the points of both together count against the domain's cap: each round is told how many
points its sealed state has stripped before (``PartyRound.stripped_before``), and ``rounds._unblinded``
refuses a round that would take the total past what the domain's own people fill when padded. A third
round is refused before any key is unwrapped.

The record is kept per executor process (the gateway's local executor, or a Ray worker of the domain's
node); a record shared by every node of a domain, kept across restarts, is not built
(``docs/cross-domain.md``). A job that is retried blinds again, with a fresh factor and a fresh sealed
state, so a retry is never refused.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace

from executors.crossdomain import wire
from executors.crossdomain.errors import CrossDomainProtocolError
from executors.crossdomain.job import PartyRound, Step
from executors.crossdomain.messages import ReblindedBatches

ROUNDS_PER_STATE = 2
"""Unblind rounds one sealed state may serve: the halves, then the swapped halves."""

_lock = threading.Lock()
_stripped: dict[bytes, tuple[int, int]] = {}
"""Per sealed state (a digest): the unblind rounds it has served and the points they were sent."""


def claim(round_: PartyRound | None) -> PartyRound | None:
    """Record ``round_`` if it is an unblind round and return it told how many points its sealed state
    stripped before; refuse it if its sealed state already served ``ROUNDS_PER_STATE`` rounds.

    >>> from executors.crossdomain.plan import CrossDomainPlan, SidePlan, Side
    >>> plan = CrossDomainPlan(SidePlan("u"), SidePlan("u"), ())
    >>> asked = wire.encode(ReblindedBatches(Side.LEFT, ((b"1" * 33, b"2" * 33),)))
    >>> once = PartyRound("doc-job", Step.UNBLIND, Side.LEFT, plan, sealed_state=b"doc-state", incoming=asked)
    >>> claim(once).stripped_before, claim(once).stripped_before
    (0, 2)
    >>> claim(once)
    Traceback (most recent call last):
    ...
    executors.crossdomain.errors.CrossDomainProtocolError: a domain strips its factor in 2 rounds per job: ...
    """
    if round_ is None or round_.step is not Step.UNBLIND:
        return round_
    asked = wire.decode(round_.incoming)
    if not isinstance(asked, ReblindedBatches):
        raise CrossDomainProtocolError("this round needs a ReblindedBatches message")
    points = sum(len(batch) for batch in asked.batches)
    digest = hashlib.sha256(
        b"xd-unblind\0"
        + round_.job_id.encode()
        + b"\0"
        + round_.side.value.encode()
        + b"\0"
        + round_.sealed_state
    ).digest()
    with _lock:
        rounds, before = _stripped.get(digest, (0, 0))
        if rounds >= ROUNDS_PER_STATE:
            raise CrossDomainProtocolError(
                f"a domain strips its factor in {ROUNDS_PER_STATE} rounds per job: this job's unblind "
                "rounds already ran (another request would unblind tokens of cells that were not released)"
            )
        _stripped[digest] = (rounds + 1, before + points)
    return replace(round_, stripped_before=before)
