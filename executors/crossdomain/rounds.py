"""Inside a domain's sandbox: one round of that domain's party (``job.PartyRound``).

The sandbox holds the data key of its own domain's tables only (the spec names no other table). The
``BLIND`` round decrypts them, runs the domain's part (the policy engine's rewrite, split per domain),
pre-aggregates per person and produces the messages for the other domain and the gateway, plus its
blinding key sealed under a key derived from its own data key (``state_key``). The other rounds
(``HELLO``: its public key of the job; ``REBLIND``; ``ANSWER``; ``UNBLIND``, for the ledger) decrypt no
data. What leaves is an Arrow table of ``(recipient, message)`` rows: protocol messages only
(``wire``), never a row.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TypeVar

import pyarrow as pa

from crypto.envelope import seal, unseal
from crypto.errors import CryptoError
from crypto.paillier import PaillierKeyPair, keypair_from_private, private_bytes
from crypto.pseudonym import derive_key
from crypto.psi import BlindingKey, derived_blinding_key, inverse, new_blinding_key, product, reblind
from crypto.sealed_box import box_keys, open_sealed, seal_to
from executors import engine, storage
from executors.base import JobSpec
from executors.crossdomain import wire
from executors.crossdomain.domain_party import DomainParty, new_party
from executors.crossdomain.errors import CrossDomainProtocolError
from executors.crossdomain.job import PartyRound, Step
from executors.crossdomain.messages import BlindedBatches, DecryptRequest, ReblindedBatches, Request
from executors.crossdomain.padding import bucket
from executors.crossdomain.plan import Side
from executors.crossdomain.protection import Protection
from executors.crossdomain.records import PersonGroups

#: Recipients of a round's messages: the other domain, the gateway, or this domain's next round.
OTHER, GATEWAY, OWN = "other", "gateway", "own"
T = TypeVar("T")
#: Bytes of a blinding key (a P-256 scalar), the first part of a domain's sealed round state; then the
#: number of its distinct people (``PEOPLE_BYTES``, big-endian), then under Paillier its private key.
BLINDING_BYTES = 32
PEOPLE_BYTES = 8
SCHEMA = pa.schema([("recipient", pa.string()), ("message", pa.binary())])


def state_aad(round_: PartyRound) -> bytes:
    return f"xd-state:{round_.job_id}:{round_.side.value}".encode()


def state_key(round_: PartyRound, data_keys: tuple[bytes, ...]) -> bytes:
    """The key that seals this domain's blinding key between its rounds: derived (HKDF) from its own
    data key, which only its own executors unwrap; on Ray, only its own nodes. The gateway relays the
    sealed blob and cannot open it."""
    if not data_keys:
        raise CrossDomainProtocolError("a domain's round runs with its own data key")
    return derive_key(data_keys[0], f"xd-state:{round_.job_id}:{round_.side.value}")


def run_round(
    spec: JobSpec, data_keys: tuple[bytes, ...], *, lineage_secret: bytes = b""
) -> tuple[dict[str, object], bytes]:
    """What ``sandbox.execute`` returns for a party round: the JSON-able header and the Arrow bytes.

    ``lineage_secret``: the dataset's ledger key (the same across its versions), from which the
    domain's lineage keys are derived; empty for a job stored before such keys, whose lineage keys
    come from the version's data key."""
    round_ = spec.party
    if round_ is None:
        raise CrossDomainProtocolError("the spec holds no party round")
    root = lineage_secret or (data_keys[0] if data_keys else b"")
    timings: dict[str, float] = {}
    started, cpu = time.perf_counter(), time.process_time()
    if round_.step is Step.HELLO:
        rows = [(OTHER, box_keys(state_key(round_, data_keys), "shares")[1])]
    elif round_.step is Step.BLIND:
        rows = _blind(spec, round_, data_keys, timings, root=root)
    elif round_.step is Step.REBLIND:
        # The shares are not this round's business (they are sealed to this domain, for ANSWER).
        other = replace(_expect(wire.decode(round_.incoming), BlindedBatches), helper_shares=())
        party = DomainParty(round_.side, PersonGroups({}, True), blinding=_blinding(round_, data_keys))
        rows = [(GATEWAY, wire.encode(party.reblinded(other)))]
    elif round_.step is Step.UNBLIND:
        rows = [(GATEWAY, wire.encode(_unblinded(round_, data_keys, root=root)))]
    else:
        request = wire.decode(round_.incoming)
        if not isinstance(request, Request):
            raise CrossDomainProtocolError("an answer round needs a request")
        if isinstance(request, DecryptRequest):
            # Paillier: decrypt the gateway's masked sums of this domain's own values, with the private
            # key its BLIND round sealed to itself.
            _, _, paillier = _state(round_, data_keys)
            party = DomainParty(
                round_.side,
                PersonGroups({}, True),
                blinding=new_blinding_key(),
                protection=Protection.PAILLIER,
                paillier=paillier,
            )
        else:
            party = DomainParty(round_.side, PersonGroups({}, True), blinding=new_blinding_key())
            party.hold(_opened(_expect(wire.decode(round_.held), BlindedBatches), round_, data_keys))
        rows = [(GATEWAY, wire.encode(party.answer(request)))]
    timings[round_.step.value] = time.perf_counter() - started
    timings[f"{round_.step.value}_cpu"] = time.process_time() - cpu  # comparable under load, unlike the wall
    table = pa.table({"recipient": [r for r, _ in rows], "message": [m for _, m in rows]}, schema=SCHEMA)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    header: dict[str, object] = {
        "status": "ok",
        "row_count": table.num_rows,
        "timings": timings,
        "engine": engine.engine_versions(),
    }
    return header, sink.getvalue().to_pybytes()


def _blind(
    spec: JobSpec, round_: PartyRound, data_keys: tuple[bytes, ...], timings: dict[str, float], *, root: bytes
) -> list[tuple[str, bytes]]:
    started = time.perf_counter()
    threads = spec.limits.threads
    tables = {
        table.sql_name: storage.load_parts(
            storage.decrypt_parts(table, key, threads=threads), columns=table.columns, threads=threads
        )
        for table, key in zip(spec.tables, data_keys, strict=True)
    }
    timings["load"] = time.perf_counter() - started
    started = time.perf_counter()
    rows = engine.run_query(  # the rows enter the protocol in order: one thread keeps it every run
        spec.sql,
        tables,
        keyed_hash_key=spec.keyed_hash_key,
        limits=spec.limits,
        parameters=spec.parameters,
        keep_row_order=True,
    ).to_pandas()
    del tables
    timings["query"] = time.perf_counter() - started
    blinding = _job_blinding(round_, root)
    # Under Paillier a key pair is made only by a domain whose values are handed over (``new_party``).
    party = new_party(round_.plan, round_.side, rows, protection=round_.protection, blinding=blinding)
    del rows
    paillier = party.paillier_keys
    state = (
        blinding.secret
        + party.people.to_bytes(PEOPLE_BYTES, "big")
        + (b"" if paillier is None else private_bytes(paillier))
    )
    sealed = seal(state_key(round_, data_keys), state, aad=state_aad(round_))
    blinded = party.blinded()
    if blinded.helper_shares:
        if not round_.peer_public:
            raise CrossDomainProtocolError("shares travel only sealed to the other domain's key")
        blinded = replace(
            blinded,
            helper_shares=tuple(
                seal_to(round_.peer_public, share, info=_share_info(round_, round_.side, i))
                for i, share in enumerate(blinded.helper_shares)
            ),
        )
    return [
        (OTHER, wire.encode(blinded)),
        (GATEWAY, wire.encode(party.payloads())),
        (OWN, sealed),
    ]


def _share_info(round_: PartyRound, origin: Side, index: int) -> bytes:
    return f"xd-shares:{round_.job_id}:{origin.value}:{index}".encode()


def _opened(held: BlindedBatches, round_: PartyRound, data_keys: tuple[bytes, ...]) -> BlindedBatches:
    """The other domain's batches with this domain's shares opened (sealed to this domain's key)."""
    private = box_keys(state_key(round_, data_keys), "shares")[0]
    try:
        shares = tuple(
            open_sealed(private, blob, info=_share_info(round_, held.origin, i))
            for i, blob in enumerate(held.helper_shares)
        )
    except CryptoError as exc:
        raise CrossDomainProtocolError(
            "the other domain's shares do not open with this domain's key"
        ) from exc
    return replace(held, helper_shares=shares)


def _blinding(round_: PartyRound, data_keys: tuple[bytes, ...]) -> BlindingKey:
    return _state(round_, data_keys)[0]


def _state(
    round_: PartyRound, data_keys: tuple[bytes, ...]
) -> tuple[BlindingKey, int, PaillierKeyPair | None]:
    """What this domain's BLIND round sealed to itself: its blinding key, its number of distinct people,
    then (under Paillier) its Paillier private key."""
    people_end = BLINDING_BYTES + PEOPLE_BYTES
    try:
        key = state_key(round_, data_keys)
        state = unseal(key, round_.sealed_state, aad=state_aad(round_))
        if len(state) < people_end:
            raise CrossDomainProtocolError("the domain's sealed round state is too short")
        paillier = keypair_from_private(state[people_end:]) if len(state) > people_end else None
    except CryptoError as exc:
        raise CrossDomainProtocolError("the domain's sealed round state does not open") from exc
    people = int.from_bytes(state[BLINDING_BYTES:people_end], "big")
    return BlindingKey(state[:BLINDING_BYTES]), people, paillier


def lineage_key(lineage: str, root: bytes) -> BlindingKey:
    """This domain's blinding key of the job's scope lineage: derived from ``root`` (its dataset's
    ledger key, the same for every version; the version's data key for a job stored before) and the
    lineage id, the same in every job of the lineage (and whichever side of the join the domain is on,
    since the two keys multiply), unrelated across lineages; only its own sandboxes can derive it."""
    if not root or not lineage:
        raise CrossDomainProtocolError("a lineage key needs the domain's ledger key and a lineage")
    return derived_blinding_key(root, f"xd-ledger:{lineage}")


def _job_blinding(round_: PartyRound, root: bytes) -> BlindingKey:
    """The key this domain blinds with in this job: fresh; under a ledger, its lineage key times a
    fresh factor ``r`` (uniform all the same, so every token that crosses is as fresh as before)."""
    fresh = new_blinding_key()
    return product(lineage_key(round_.lineage, root), fresh) if round_.lineage else fresh


def _unblinded(round_: PartyRound, data_keys: tuple[bytes, ...], *, root: bytes) -> ReblindedBatches:
    """The gateway's tokens of released cells with this job's factor ``r`` taken out, order kept:
    raised to ``r^-1 = lineage_key / job_key``. What comes in and goes out also carries the gateway's
    own fresh factor, so this domain sees only points it cannot link to any job or person.

    The domain checks what it can without trusting the gateway: every person of a released cell is one
    of its own people, so it strips no more points than its own distinct people fill once padded (the
    number sealed by its own ``BLIND`` round, which the gateway cannot change), and no point twice (the
    gateway pads with distinct random points). Its executor lets a sealed state serve two unblind rounds
    (the halves, then the swapped halves) and counts their points together (``strip_once``). Which
    cells were released it cannot check: it never sees them."""
    incoming = _expect(wire.decode(round_.incoming), ReblindedBatches)
    if incoming.origin is not round_.side:
        raise CrossDomainProtocolError("a domain unblinds only the tokens sent to it")
    blinding, people, _ = _state(round_, data_keys)
    tokens = [token for batch in incoming.batches for token in batch]
    asked = round_.stripped_before + len(tokens)  # this round's and the earlier half's
    if asked > bucket(people):
        raise CrossDomainProtocolError(
            f"the gateway asked to unblind more tokens ({asked}) than this domain's {people} people "
            f"fill when padded ({bucket(people)}): released cells hold only people of this domain"
        )
    if len(set(tokens)) != len(tokens):
        raise CrossDomainProtocolError("the gateway asked to unblind a token twice")
    strip = product(lineage_key(round_.lineage, root), inverse(blinding))
    return ReblindedBatches(round_.side, tuple(reblind(strip, batch) for batch in incoming.batches))


def _expect(message: object, kind: type[T]) -> T:
    if not isinstance(message, kind):
        raise CrossDomainProtocolError(f"this round needs a {kind.__name__} message")
    return message
