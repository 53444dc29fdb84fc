"""Every message that crosses a domain boundary in a cross-domain job, and nothing else.

A message holds blinded tokens (P-256 points blinded by at least one key that the receiver lacks),
Paillier ciphertexts under the sender's key, group keys (to the gateway only, which releases them), or
masked sums. No message holds a unit id or a value in the clear: the tests read every message of a run
as the receiver would.
"""

from __future__ import annotations

from dataclasses import dataclass

from executors.crossdomain.plan import Side

GroupKey = tuple[object, ...]


@dataclass(frozen=True)
class BlindedBatches:
    """Domain → other domain: ``H(unit)^k_sender`` per batch (one batch per group, padded, shuffled)."""

    origin: Side
    batches: tuple[tuple[bytes, ...], ...]


@dataclass(frozen=True)
class ReblindedBatches:
    """Other domain → gateway: the same batches raised to the other key too, in the same order."""

    origin: Side
    batches: tuple[tuple[bytes, ...], ...]


@dataclass(frozen=True)
class Payloads:
    """Domain → gateway: what the gateway needs to add up the domain's values for matched people.

    ``group_keys[i]`` names batch ``i`` (the gateway releases group keys); ``ciphertexts[i][j]`` encrypts
    the packed slots of the person behind token ``j`` of batch ``i`` under ``paillier_n`` (empty when the
    domain's values are not needed); ``slots``: how many packed slots each plaintext holds.
    """

    origin: Side
    group_keys: tuple[GroupKey, ...]
    one_row_per_unit: bool
    paillier_n: int | None
    slots: int
    ciphertexts: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class DecryptRequest:
    """Gateway → domain: masked encrypted sums of released cells only (sum + a uniform mask)."""

    ciphertexts: tuple[int, ...]


@dataclass(frozen=True)
class DecryptReply:
    """Domain → gateway: the masked sums, decrypted (uniformly distributed without the masks)."""

    masked: tuple[int, ...]


Message = BlindedBatches | ReblindedBatches | Payloads | DecryptRequest | DecryptReply
