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
    """Domain → other domain: ``H(unit)^k_sender`` per batch (one batch per group, padded, shuffled).

    ``helper_shares[i]``: under secret sharing, the receiver's share of the packed slots behind batch
    ``i``'s tokens (``uint64``, one row per token, little-endian bytes); empty otherwise.
    """

    origin: Side
    batches: tuple[tuple[bytes, ...], ...]
    helper_shares: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class ReblindedBatches:
    """Other domain → gateway: the same batches raised to the other key too, in the same order."""

    origin: Side
    batches: tuple[tuple[bytes, ...], ...]


@dataclass(frozen=True)
class Payloads:
    """Domain → gateway: what the gateway needs to add up the domain's values for matched people.

    ``group_keys[i]`` names batch ``i`` (the gateway releases group keys); ``ciphertexts[i][j]`` encrypts
    the packed slots of the person behind token ``j`` of batch ``i`` under ``paillier_n``, or
    ``gateway_shares[i]`` holds the gateway's shares of them (both empty when the domain's values are
    not needed); ``slots``: how many slots each person has.
    """

    origin: Side
    group_keys: tuple[GroupKey, ...]
    one_row_per_unit: bool
    paillier_n: int | None
    slots: int
    ciphertexts: tuple[tuple[int, ...], ...]
    gateway_shares: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class DecryptRequest:
    """Gateway → ``origin``'s domain: masked encrypted sums of its values in released cells only."""

    origin: Side
    ciphertexts: tuple[int, ...]


@dataclass(frozen=True)
class DecryptReply:
    """Domain → gateway: the masked sums, decrypted (uniformly distributed without the masks)."""

    origin: Side
    masked: tuple[int, ...]


@dataclass(frozen=True)
class ShareSumRequest:
    """Gateway → the domain holding the other share of ``origin``'s values: for each released cell, a
    batch of ``origin`` and the positions matched in it (the domain learns released cells' sizes only)."""

    origin: Side
    cells: tuple[tuple[int, tuple[int, ...]], ...]


@dataclass(frozen=True)
class ShareSumReply:
    """Domain → gateway: per requested cell, the sum of its shares (``uint64`` per slot, as bytes)."""

    origin: Side
    sums: bytes


Request = DecryptRequest | ShareSumRequest
Reply = DecryptReply | ShareSumReply
Message = BlindedBatches | ReblindedBatches | Payloads | Request | Reply
