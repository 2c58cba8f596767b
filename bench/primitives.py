"""Baselines for the platform's hot paths: JCS canonicalisation, Ed25519 verify, Merkle proofs."""

from __future__ import annotations

import time
from collections.abc import Callable

from services.common import merkle, signing
from services.common.signing import Keypair


def rate(label: str, fn: Callable[[], object], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    per_s = n / (time.perf_counter() - started)
    print(f"  {label:<48} {per_s:>12,.0f} /s")
    return per_s


def main() -> None:
    print("primitives")
    key = Keypair.generate()
    reading = key.sign(
        {
            "device_id": key.did,
            "seq": 1,
            "ts": "2026-11-21T12:00:00.000Z",
            "kind": "air_quality",
            "zone": "old-town",
            "values": {"pm2_5": 7.5, "pm10": 14.0, "no2": 20.5},
        }
    )
    body = signing.canonical_bytes(signing.unsigned(reading))
    signature = signing.b64url_decode(reading["sig"])
    verify_key = key.signing_key.verify_key
    raw = rate("bare Ed25519 verify (PyNaCl)", lambda: verify_key.verify(body, signature), 5000)
    full = rate(
        "signed reading verify (JCS + did:key + Ed25519)", lambda: signing.verify(reading, "device_id"), 5000
    )
    print(f"  {'ratio signed-object / bare verify':<48} {full / raw:>12.2f}")
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(1 << 14)]
    nodes: dict[tuple[int, int], bytes] = {}
    for level, index, digest in merkle.new_nodes_for_append(0, leaves, lambda lv, ix: nodes[(lv, ix)]):
        nodes[(level, index)] = digest
    size = len(leaves)

    def subtree(start: int, end: int) -> bytes:
        return merkle.subtree_hash(start, end, lambda lv, ix: nodes[(lv, ix)])

    rate(
        f"inclusion proof from stored nodes (n={size})",
        lambda: merkle.inclusion_proof(12345, size, subtree),
        2000,
    )
