"""One cross-domain job, run end to end, with every message that crosses a boundary on record.

The order of the steps (Ion et al. 2020's private intersection-sum, with the gateway as the party that
matches and adds, so that neither domain learns which of its people the other one holds):

1. each domain blinds its units, batch by batch (one batch per group key, padded, shuffled), and
   sends them to the other domain;
2. each domain raises the other's tokens to its own key and forwards them to the gateway;
3. each domain sends the gateway its group keys and, when its values are needed, its per-person
   values aligned with its tokens: encrypted under its own Paillier key, or the gateway's shares of
   them (the other domain got the other shares with the tokens in step 1);
4. the gateway matches doubly blinded tokens per pair of batches, counts matched people per cell, and
   for each cell of at least ``min_units`` people adds the matched ciphertexts and masks each sum, or
   adds up its own shares of the matched positions;
5. each domain decrypts the masked sums of its own values, and the gateway removes the masks; or,
   under secret sharing (``protection.Protection.SHARES``), the other domain adds up its shares of the
   matched positions of each released cell, and the gateway adds its own.

Here every party runs in this process, one object each, and holds only its own keys; a deployment
runs each domain's part on that domain's executor and carries the same messages between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import pandas as pd

from executors.crossdomain.domain_party import DomainParty, new_party
from executors.crossdomain.errors import CrossDomainProtocolError
from executors.crossdomain.gateway_party import Gateway
from executors.crossdomain.messages import Message
from executors.crossdomain.plan import CrossDomainPlan, Side
from executors.crossdomain.protection import Protection

GATEWAY = "gateway"
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Delivery:
    """One message, from one party to another (``left``, ``right`` or ``gateway``)."""

    sender: str
    recipient: str
    message: Message


@dataclass
class Transcript:
    """Every delivery of a run, in order: what each party received is its whole view of the others."""

    deliveries: list[Delivery] = field(default_factory=list)

    def send(self, sender: str, recipient: str, message: M) -> M:
        self.deliveries.append(Delivery(sender, recipient, message))
        return message

    def received_by(self, party: str) -> tuple[Message, ...]:
        return tuple(d.message for d in self.deliveries if d.recipient == party)


@dataclass(frozen=True)
class CrossDomainRun:
    """The result table (with ``_sbx_units``, for the release function) and the run's transcript."""

    table: pd.DataFrame
    transcript: Transcript


def run_in_process(left: DomainParty, right: DomainParty, gateway: Gateway) -> CrossDomainRun:
    """Run one job between two domains' parties (``domain_party.new_party``) and the gateway; see the
    module docstring for the steps."""
    if (left.side, right.side) != (Side.LEFT, Side.RIGHT):
        raise CrossDomainProtocolError("run_in_process takes the left party, then the right party")
    parties = {Side.LEFT: left, Side.RIGHT: right}
    transcript = Transcript()
    for sender, receiver in ((left, right), (right, left)):
        blinded = transcript.send(sender.side.value, receiver.side.value, sender.blinded())
        gateway.receive_tokens(transcript.send(receiver.side.value, GATEWAY, receiver.reblinded(blinded)))
    for party in (left, right):
        gateway.receive_payloads(transcript.send(party.side.value, GATEWAY, party.payloads()))
    pending = gateway.match()
    replies = []
    for side, request in pending.requests:
        transcript.send(GATEWAY, side.value, request)
        replies.append(transcript.send(side.value, GATEWAY, parties[side].answer(request)))
    return CrossDomainRun(gateway.table(pending, replies), transcript)


def run_plan(
    plan: CrossDomainPlan,
    left_rows: pd.DataFrame,
    right_rows: pd.DataFrame,
    *,
    min_units: int,
    protection: Protection = Protection.PAILLIER,
) -> CrossDomainRun:
    """``plan`` on each domain's own (filtered, masked) rows, with fresh keys for every party (the
    gateway first: it refuses a plan it cannot compute exactly before any row is read)."""
    gateway = Gateway(plan, min_units=min_units)
    return run_in_process(
        new_party(plan, Side.LEFT, left_rows, protection=protection),
        new_party(plan, Side.RIGHT, right_rows, protection=protection),
        gateway,
    )
