"""What a cross-domain job carries in its spec: the plan, each domain's part, and each round's input.

``CrossDomainJob`` rides on ``JobSpec.cross_domain`` to the coordinator (``placed.py``), which turns it
into rounds: each a ``JobSpec`` of one domain's tables only, with ``JobSpec.party`` set to a
``PartyRound`` that the sandbox runs (``rounds.py``). Plain data, so that specs still cross process and
node boundaries unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from executors.crossdomain.plan import CrossDomainPlan, Side
from executors.crossdomain.protection import Protection


class Step(StrEnum):
    HELLO = "hello"  # publish this domain's per-job public key, to which the other seals its shares
    BLIND = "blind"  # run the part over the domain's own data; blind, share, send
    REBLIND = "reblind"  # raise the other domain's tokens to this domain's key
    ANSWER = "answer"  # add up this domain's shares of the other's values for released cells
    UNBLIND = "unblind"  # strip this job's factor from released cells' tokens (the ledger's, ``ledger``)


@dataclass(frozen=True)
class PartyRound:
    """One round of one domain's party, run in a sandbox of that domain.

    ``sealed_state``: what its ``BLIND`` round sealed (its blinding key, under a key the sandbox derives
    from its own domain's data key, which neither the gateway nor the other domain holds);
    ``incoming``: the message this round answers (``wire.encode``); ``held``: for ``ANSWER``, the other
    domain's blinded batches, which carry this domain's shares of the other's values, sealed to it;
    ``peer_public``: for ``BLIND``, the other domain's public key of this job (its ``HELLO``), to which
    the shares that travel with the tokens are sealed, so that the gateway, which carries them, cannot
    add them to its own; ``lineage``: the id of the scope lineage whose released-cohort ledger sketches
    this job's cells (``executors.crossdomain.ledger``), or empty for none: the domain's blinding key
    is then its key of that lineage times a fresh factor of this job, instead of fresh alone;
    ``protection``: how values are handed over (under Paillier the sealed state holds the domain's
    Paillier private key too, and ``ANSWER`` decrypts the gateway's masked sums); ``stripped_before``:
    for ``UNBLIND``, the points this sealed state's earlier unblind rounds were sent, set by the domain's
    own executor (``strip_once``), never taken from the gateway.
    """

    job_id: str
    step: Step
    side: Side
    plan: CrossDomainPlan
    sealed_state: bytes = field(default=b"", repr=False)
    incoming: bytes = field(default=b"", repr=False)
    held: bytes = field(default=b"", repr=False)
    peer_public: bytes = b""
    lineage: str = ""
    protection: Protection = Protection.SHARES
    stripped_before: int = 0


@dataclass(frozen=True)
class DomainPartSpec:
    """One domain's part: its domain, its dataset, its SELECT and the SQL names of its tables."""

    domain: str
    dataset: str
    sql: str
    sql_names: tuple[str, ...]


@dataclass(frozen=True)
class CrossDomainJob:
    """A whole cross-domain job: both parts, the plan, the scope's k, and the operator's ordering."""

    plan: CrossDomainPlan
    left: DomainPartSpec
    right: DomainPartSpec
    min_units: int
    order_by: tuple[tuple[str, bool], ...] = ()
    limit: int | None = None
    columns: tuple[str, ...] = ()  # the operator's output columns, in the order of the SELECT
    #: Under differential privacy with group keys from the data: the scale and threshold of OpenDP's
    #: noisy threshold (``policies.dp.cost.KeySelection``), which the gateway applies to each cell's
    #: matched people before asking for any sum.
    selection: tuple[float, int] | None = None
    #: On replay of such a job: the names of the key columns and the key values it released, the only
    #: cells the gateway sums (the selection is not drawn again).
    keep: tuple[tuple[str, ...], tuple[tuple[object, ...], ...]] | None = None
    #: The scope lineage whose released-cohort ledger decides these cells (``ledger.py``); "" for none
    #: (a scope with differential privacy, or a deployment without the ledger).
    lineage: str = ""
    protection: Protection = Protection.SHARES  # the scope's ``cross_domain.values``

    def part(self, side: Side) -> DomainPartSpec:
        return self.left if side is Side.LEFT else self.right
