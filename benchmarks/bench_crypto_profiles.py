"""Benchmark the two crypto profiles against each other, in one run and one process.

1. Envelope throughput: sealing and unsealing ``--size`` MiB parts (the size of a dataset part) with
   SM4-GCM (gm) and AES-256-GCM (international), interleaved round by round so both see the same load;
   MiB/s from the median of ``--repeat`` rounds, and the ratio gm / international.
2. Signatures: signing and verifying a receipt-sized message (2 KiB) with SM2 (gm) and Ed25519
   (international); microseconds per operation from the median of ``--repeat`` batches, and the ratio.
3. Hashing: SM3 and SHA-256 of a part (the audit chain and version ids), MiB/s and the ratio.

    python benchmarks/bench_crypto_profiles.py --size 8 --repeat 15
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from collections.abc import Callable

from crypto.profile import PROFILES, CryptoProfile
from crypto.signing import generate_signing_key, verify

MIB = 1 << 20
AAD = b"health-bureau/citizens/v1/citizens/part-0"


def _seconds(run: Callable[..., object], *args: object, **kwargs: object) -> float:
    """Wall-clock seconds of one call of ``run(*args, **kwargs)``."""
    start = time.perf_counter()
    run(*args, **kwargs)
    return time.perf_counter() - start


def _repeated(run: Callable[..., object], times: int, *args: object) -> None:
    for _ in range(times):
        run(*args)


def bench_envelopes(size_mib: int, repeat: int) -> dict[str, dict[str, float]]:
    """MiB/s of seal and unseal per profile (median round)."""
    plaintext = os.urandom(size_mib * MIB)
    samples: dict[str, dict[str, list[float]]] = {name: {"seal": [], "unseal": []} for name in PROFILES}
    keys = {name: p.aead.new_key() for name, p in PROFILES.items()}
    blobs = {name: p.aead.seal(keys[name], plaintext, aad=AAD) for name, p in PROFILES.items()}
    for _ in range(repeat):  # interleaved: both profiles see the same machine load
        for name, profile in PROFILES.items():
            aead = profile.aead
            samples[name]["seal"].append(_seconds(aead.seal, keys[name], plaintext, aad=AAD))
            samples[name]["unseal"].append(_seconds(aead.unseal, keys[name], blobs[name], aad=AAD))
    return {
        name: {op: size_mib / statistics.median(s) for op, s in ops.items()} for name, ops in samples.items()
    }


def bench_signatures(repeat: int, batch: int) -> dict[str, dict[str, float]]:
    """Microseconds per sign and per verify of a 2 KiB message, per profile (median batch)."""
    message = os.urandom(2048)
    out: dict[str, dict[str, list[float]]] = {name: {"sign": [], "verify": []} for name in PROFILES}
    pairs = {name: generate_signing_key(p.signature) for name, p in PROFILES.items()}
    signatures = {name: pair.sign(message) for name, pair in pairs.items()}
    for _ in range(repeat):
        for name, profile in PROFILES.items():
            pair = pairs[name]
            check = functools.partial(verify, algorithm=profile.signature)
            out[name]["sign"].append(_seconds(_repeated, pair.sign, batch, message))
            out[name]["verify"].append(
                _seconds(_repeated, check, batch, pair.public, message, signatures[name])
            )
    return {
        name: {op: statistics.median(s) / batch * 1e6 for op, s in ops.items()} for name, ops in out.items()
    }


def bench_hashes(size_mib: int, repeat: int) -> dict[str, float]:
    """MiB/s of the profile's hash (median round)."""
    data = os.urandom(size_mib * MIB)
    samples: dict[str, list[float]] = {name: [] for name in PROFILES}
    for _ in range(repeat):
        for name, profile in PROFILES.items():
            samples[name].append(_seconds(profile.hash_hex, data))
    return {name: size_mib / statistics.median(s) for name, s in samples.items()}


def _names(profile: CryptoProfile) -> str:
    return f"{profile.name} ({profile.aead.name}, {profile.signature}, {profile.hash_name})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=8, help="MiB per sealed part and per hash")
    parser.add_argument("--repeat", type=int, default=15, help="rounds (median reported)")
    parser.add_argument("--batch", type=int, default=200, help="signatures per timed batch")
    args = parser.parse_args()
    gm, intl = PROFILES["gm"], PROFILES["international"]
    print(f"profiles: {_names(gm)} against {_names(intl)}")
    envelopes = bench_envelopes(args.size, args.repeat)
    for op in ("seal", "unseal"):
        g, i = envelopes["gm"][op], envelopes["international"][op]
        rates = f"SM4-GCM {g:8.1f} MiB/s  AES-256-GCM {i:8.1f} MiB/s"
        print(f"envelope {op:6} {rates}  gm/intl throughput {g / i:.3f}")
    signatures = bench_signatures(args.repeat, args.batch)
    for op in ("sign", "verify"):
        g, i = signatures["gm"][op], signatures["international"][op]
        print(f"signature {op:6} SM2 {g:8.1f} us  Ed25519 {i:8.1f} us  gm/intl time {g / i:.2f}x")
    hashes = bench_hashes(args.size, args.repeat)
    g, i = hashes["gm"], hashes["international"]
    print(f"hash            SM3 {g:8.1f} MiB/s  SHA-256 {i:8.1f} MiB/s  gm/intl throughput {g / i:.3f}")


if __name__ == "__main__":
    main()
