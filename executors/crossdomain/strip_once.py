"""A domain strips its job factor once: the record its executor keeps of the unblind rounds it has run.

Under the released-cohort ledger a domain takes its fresh factor ``r`` out of the points the gateway
sends (``rounds._unblinded``). Its blinding key comes back to it sealed, carried by the gateway, which
could replay the same sealed state to a second unblind round and have other points stripped with the
same factor: stable lineage tokens for people of cells that were not released. The sealed state cannot
say it was used, so the executor that unwraps the domain's data key for the round keeps the record: a
second unblind round with the same sealed state is refused before any key is unwrapped.

The record is kept per executor process (the gateway's local executor, or a Ray worker of the domain's
node); a record shared by every node of a domain, kept across restarts, is not built
(``docs/cross-domain.md``). A job that is retried blinds again, with a fresh factor and a fresh sealed
state, so a retry is never refused.
"""

from __future__ import annotations

import hashlib
import threading

from executors.crossdomain.errors import CrossDomainProtocolError
from executors.crossdomain.job import PartyRound, Step

_lock = threading.Lock()
_stripped: set[bytes] = set()


def claim(round_: PartyRound | None) -> None:
    """Record ``round_`` if it is an unblind round; refuse it if its sealed state was unblinded before.

    >>> from executors.crossdomain.plan import CrossDomainPlan, SidePlan, Side
    >>> plan = CrossDomainPlan(SidePlan("u"), SidePlan("u"), ())
    >>> once = PartyRound("doc-job", Step.UNBLIND, Side.LEFT, plan, sealed_state=b"doc-state")
    >>> claim(once)
    >>> claim(once)
    Traceback (most recent call last):
    ...
    executors.crossdomain.errors.CrossDomainProtocolError: a domain strips its factor once per job: ...
    """
    if round_ is None or round_.step is not Step.UNBLIND:
        return
    digest = hashlib.sha256(
        b"xd-unblind\0"
        + round_.job_id.encode()
        + b"\0"
        + round_.side.value.encode()
        + b"\0"
        + round_.sealed_state
    ).digest()
    with _lock:
        if digest in _stripped:
            raise CrossDomainProtocolError(
                "a domain strips its factor once per job: this job's unblind round already ran "
                "(a second request would unblind tokens of cells that were not released)"
            )
        _stripped.add(digest)
