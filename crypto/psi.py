"""Commutative blinding of join keys for ECDH private set intersection, through ``openmined-psi``.

The ECDH-PSI construction (Meadows 1986; Huberman, Franklin and Hogg 1999; the first round of Ion et
al., "On Deploying Secure Computing: Private Intersection-Sum-with-Cardinality", EuroS&P 2020, §3.1):
each party hashes an identifier to a point of a prime-order elliptic-curve group and raises it to its
own secret scalar. Because exponentiation commutes, ``H(x)^(a*b)`` is the same whichever party blinds
first, so two doubly blinded sets can be matched by equality, while a singly blinded token is useless
to anyone without the blinding key (DDH on P-256). ``openmined-psi`` (OpenMined's maintained C++
library, P-256, hash-to-curve included) does every group operation here; this module only carries its
messages as bytes so that the protocol can route them between parties.

>>> a, b = new_blinding_key(), new_blinding_key()
>>> left = reblind(b, blind(a, ["P0042", "P0007"]))
>>> right = reblind(a, blind(b, ["P0007", "P1234"]))
>>> left[1] == right[0], left[0] in right
(True, False)
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import private_set_intersection.python as _psi
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.errors import CryptoError

#: Bytes of a compressed P-256 point, the form of every token.
TOKEN_BYTES = 33
#: The order ``n`` of the P-256 group (SEC 2 v2, §2.4.2; FIPS 186-4, D.1.2.3): blinding keys are scalars
#: in ``[1, n)``, and exponents multiply modulo ``n``.
ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_SCALAR_BYTES = 32
_DERIVE_INFO = b"sandbox/psi-scalar/v1:"


@dataclass(frozen=True)
class BlindingKey:
    """One party's secret scalar for one job; never leaves the party that made it."""

    secret: bytes = field(repr=False)


def new_blinding_key() -> BlindingKey:
    """A fresh random scalar for one job (drawn by ``openmined-psi`` from a secure source).

    >>> new_blinding_key() == new_blinding_key()
    False
    """
    return BlindingKey(bytes(_psi.client.CreateWithNewKey(True).GetPrivateKeyBytes()))


def derived_blinding_key(secret: bytes, label: str) -> BlindingKey:
    """A blinding key that is the same every time for ``(secret, label)``: for a domain, its key of a
    scope lineage, so that the doubly blinded token of a person is the same in every job of it.

    HKDF-SHA256 (RFC 5869) expands ``secret`` to 48 bytes, reduced modulo ``n - 1`` and plus one: FIPS
    186-4 B.4.1 ("key pair generation using extra random bits"), whose bias is below ``2**-64``.

    >>> a = derived_blinding_key(bytes(32), "lineage-1")
    >>> a == derived_blinding_key(bytes(32), "lineage-1"), a == derived_blinding_key(bytes(32), "lineage-2")
    (True, False)
    """
    if len(secret) < _SCALAR_BYTES:
        raise CryptoError(f"a blinding key is derived from at least {_SCALAR_BYTES} secret bytes")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=_DERIVE_INFO + label.encode())
    return _key(int.from_bytes(hkdf.derive(secret), "big") % (ORDER - 1) + 1)


def product(first: BlindingKey, second: BlindingKey) -> BlindingKey:
    """The key that blinds as ``first`` then ``second`` do in turn: ``H(x)^(first*second mod n)``.

    >>> a, b = new_blinding_key(), new_blinding_key()
    >>> blind(product(a, b), ["x"]) == reblind(b, blind(a, ["x"]))
    True
    """
    return _key(_scalar(first) * _scalar(second) % ORDER)


def inverse(key: BlindingKey) -> BlindingKey:
    """The key that undoes ``key``: ``(t^key)^inverse(key) == t`` (the group has prime order ``n``).

    >>> a, b = new_blinding_key(), new_blinding_key()
    >>> reblind(inverse(a), reblind(a, blind(b, ["x"]))) == blind(b, ["x"])
    True
    """
    return _key(pow(_scalar(key), -1, ORDER))


def _scalar(key: BlindingKey) -> int:
    value = int.from_bytes(key.secret, "big")
    if not 0 < value < ORDER:
        raise CryptoError("a blinding key is not a scalar of the P-256 group")
    return value


def _key(value: int) -> BlindingKey:
    return BlindingKey(value.to_bytes(_SCALAR_BYTES, "big"))


def blind(key: BlindingKey, items: Sequence[str]) -> tuple[bytes, ...]:
    """``H(item)^key`` for each item, in the order given.

    >>> key = new_blinding_key()
    >>> blind(key, ["x"]) == blind(key, ["x"]), len(blind(key, ["x"])[0]) == TOKEN_BYTES
    (True, True)
    """
    if not items:
        return ()
    # reveal_intersection=True keeps the request in input order (the caller orders and shuffles).
    client = _psi.client.CreateFromKey(key.secret, True)
    return tuple(bytes(t) for t in client.CreateRequest(list(items)).encrypted_elements)


def reblind(key: BlindingKey, tokens: Sequence[bytes]) -> tuple[bytes, ...]:
    """``token^key`` for each token blinded by another party, in the order given.

    A token that is not a point of the group is refused (a malformed or forged message).

    >>> a, b = new_blinding_key(), new_blinding_key()
    >>> reblind(a, blind(b, ["x"])) == reblind(b, blind(a, ["x"]))
    True
    """
    if not tokens:
        return ()
    if any(len(t) != TOKEN_BYTES for t in tokens):
        raise CryptoError(f"a blinded token must be a compressed P-256 point of {TOKEN_BYTES} bytes")
    server = _psi.server.CreateFromKey(key.secret, True)
    request = _psi.Request()
    request.reveal_intersection = True
    request.encrypted_elements.extend(tokens)
    try:
        response = server.ProcessRequest(request)
    except RuntimeError as exc:
        raise CryptoError("a blinded token is not a point of the P-256 group") from exc
    return tuple(bytes(t) for t in response.encrypted_elements)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Blinders:
    """``blind`` and ``reblind`` spread over this machine's cores, in worker processes.

    ``openmined-psi`` holds the interpreter lock through a whole request, so threads run its group
    operations one at a time. Here each worker (``python -m crypto.psi_worker``, which imports this
    module and nothing of the caller's) takes one contiguous slice of the items and runs the library's
    own batch call on it; the slices come back in order, so the results are those of ``blind`` and
    ``reblind`` (tested). A key and the items cross to a worker through a pipe of this process's own
    child, as bytes, never pickled; nothing is written anywhere. Fewer than ``min_items`` items, or one
    core, run here (4,096 group operations take about a quarter of a second, the order of a worker's
    start). Calls over the workers run one at a time. A worker that dies (killed, out of memory) costs
    one call its speed, not its answer: every worker is stopped, that call runs here, and the next one
    starts fresh workers.

    The workers start on the first call that needs them (or ``warm``) and serve every call until
    ``close`` (use it as a context manager). ``worker_cpu_s`` adds up the CPU seconds the workers spent
    on the items (what runs here counts in this process's own CPU time).
    """

    def __init__(self, workers: int | None = None, *, min_items: int = 4096) -> None:
        self.workers = max(1, workers if workers is not None else _cores())
        self._min_items = max(1, min_items)
        self.worker_cpu_s = 0.0
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Blinders:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            procs, self._procs = self._procs, []
        self._stop(procs)

    @staticmethod
    def _stop(procs: Sequence[subprocess.Popen[bytes]], *, wait_s: float = 5) -> None:
        for proc in procs:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):  # a dead worker's pipe is already broken
                    proc.stdin.close()  # end of requests: the worker exits
        for proc in procs:
            try:
                proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def warm(self, items: int) -> None:
        """Start the workers now if a call of ``items`` items would use them, so that their start
        (an interpreter and the library: a few tenths of a second) overlaps what the caller does next."""
        if self.workers > 1 and items >= self._min_items:
            with self._lock, contextlib.suppress(_NoWorkers):
                self._started(self.workers)

    def blind(self, key: BlindingKey, items: Sequence[str]) -> tuple[bytes, ...]:
        """``blind(key, items)``, over the workers."""
        if self.workers == 1 or len(items) < self._min_items:
            return blind(key, items)
        if any("\n" in item for item in items):
            raise CryptoError("an item to blind spreads over the workers only without line breaks")
        slices = ["\n".join(items[i:j]).encode() for i, j in self._slices(len(items))]
        try:
            return self._run(_BLIND, key, slices)
        except (_NoWorkers, _WorkerLost):
            return blind(key, items)

    def reblind(self, key: BlindingKey, tokens: Sequence[bytes]) -> tuple[bytes, ...]:
        """``reblind(key, tokens)``, over the workers; a token that is not a point is refused."""
        if self.workers == 1 or len(tokens) < self._min_items:
            return reblind(key, tokens)
        if any(len(t) != TOKEN_BYTES for t in tokens):
            raise CryptoError(f"a blinded token must be a compressed P-256 point of {TOKEN_BYTES} bytes")
        try:
            return self._run(_REBLIND, key, [b"".join(tokens[i:j]) for i, j in self._slices(len(tokens))])
        except (_NoWorkers, _WorkerLost):
            return reblind(key, tokens)

    def _slices(self, n: int) -> list[tuple[int, int]]:
        bounds = [n * i // self.workers for i in range(self.workers + 1)]
        return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]

    def _run(self, operation: bytes, key: BlindingKey, slices: list[bytes]) -> tuple[bytes, ...]:
        with self._lock:  # one call at a time over the workers
            procs = self._started(len(slices))
            out: list[bytes] = []
            refused: CryptoError | None = None
            try:
                for proc, payload in zip(procs, slices, strict=False):
                    _send(proc, operation + key.secret + _LENGTH.pack(len(payload)) + payload)
                for proc in procs[: len(slices)]:
                    try:  # every answer is read, so that the workers stay in step for the next call
                        joined, cpu = _received(proc)
                    except CryptoError as exc:
                        refused = refused or exc
                        continue
                    self.worker_cpu_s += cpu
                    out.extend(joined[i : i + TOKEN_BYTES] for i in range(0, len(joined), TOKEN_BYTES))
            except _WorkerLost:
                # A worker died (killed, out of memory): the others may be mid-answer and out of step,
                # so all are stopped; the caller runs this call itself and the next call starts anew.
                self._stop(self._procs, wait_s=0.1)  # a survivor blocked on its answer is killed
                self._procs = []
                raise
        if refused is not None:
            raise refused
        return tuple(out)

    def _started(self, n: int) -> list[subprocess.Popen[bytes]]:
        root = str(Path(__file__).resolve().parent.parent)  # the folder that holds this package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        while len(self._procs) < n:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "crypto.psi_worker"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                    cwd=root,
                )
            except OSError as exc:  # no process may be started here: every call runs in this one
                self.workers = 1
                raise _NoWorkers from exc
            self._procs.append(proc)
        return self._procs[:n]


class _NoWorkers(Exception):
    """No worker process could be started (the caller runs the call itself)."""


class _WorkerLost(Exception):
    """A worker ended or its pipe broke mid-call (the caller runs the call itself)."""


#: A worker's requests: the operation, the key's 32 bytes, the payload's length, the payload; its
#: answers: the length, the joined tokens, then its CPU seconds for them (``psi_worker``).
_BLIND, _REBLIND = b"B", b"R"
_LENGTH = struct.Struct(">Q")
_CPU = struct.Struct(">d")
_REFUSED = (1 << 64) - 1  # the length a worker answers for a request it refused


def _send(proc: subprocess.Popen[bytes], data: bytes) -> None:
    if proc.stdin is None:
        raise CryptoError("a blinding worker has no input")
    try:
        proc.stdin.write(data)
        proc.stdin.flush()
    except (BrokenPipeError, OSError) as exc:
        raise _WorkerLost("a blinding worker ended") from exc


def _received(proc: subprocess.Popen[bytes]) -> tuple[bytes, float]:
    if proc.stdout is None:
        raise CryptoError("a blinding worker has no output")
    head = proc.stdout.read(_LENGTH.size)
    if len(head) != _LENGTH.size:
        raise _WorkerLost("a blinding worker ended without an answer")
    (length,) = _LENGTH.unpack(head)
    if length == _REFUSED:
        raise CryptoError("a blinded token is not a point of the P-256 group")
    body = proc.stdout.read(length + _CPU.size)
    if len(body) != length + _CPU.size:
        raise _WorkerLost("a blinding worker's answer is cut short")
    return body[:length], _CPU.unpack(body[length:])[0]


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """A worker's loop (``python -m crypto.psi_worker``): answer requests until its input ends."""
    while True:
        head = requests.read(1 + _SCALAR_BYTES + _LENGTH.size)
        if not head:
            return
        if len(head) != 1 + _SCALAR_BYTES + _LENGTH.size:
            raise CryptoError("a blinding request is cut short")
        operation, secret = head[:1], head[1 : 1 + _SCALAR_BYTES]
        (length,) = _LENGTH.unpack(head[1 + _SCALAR_BYTES :])
        payload = requests.read(length)
        started = time.thread_time()
        key = BlindingKey(secret)
        try:
            if operation == _BLIND:
                out = b"".join(blind(key, payload.decode().split("\n")))
            elif operation == _REBLIND:
                tokens = [payload[i : i + TOKEN_BYTES] for i in range(0, len(payload), TOKEN_BYTES)]
                out = b"".join(reblind(key, tokens))
            else:
                raise CryptoError("an unknown blinding request")
        except CryptoError:  # a token that is not a point: the parent refuses the whole call
            answers.write(_LENGTH.pack(_REFUSED))
            answers.flush()
            continue
        cpu = time.thread_time() - started
        answers.write(_LENGTH.pack(len(out)) + out + _CPU.pack(cpu))
        answers.flush()
