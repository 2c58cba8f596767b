"""Tests of services.common.merkle against a naive reference written straight from RFC 9162 section 2.1.

Regenerate the vector file (from the reference, not from the module) with
``.venv/bin/python -m tests.unit.test_merkle``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from services.common import merkle
from services.common.merkle import (
    EMPTY_ROOT,
    InvalidProofError,
    ProofError,
    RootMismatchError,
    aligned_ranges,
    consistency_proof,
    fold_ranges,
    inclusion_proof,
    leaf_hash,
    new_nodes_for_append,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    subtree_hash,
    verify_consistency,
    verify_inclusion,
)

MAX = 64
VECTORS = Path(__file__).parent / "vectors" / "merkle.json"

# ----------------------------------------------------------------------------------------------------------------
# Naive reference, transcribed from RFC 9162: D is a tuple of entries, slicing as in the RFC's D[k1:k2].


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _largest_power_of_two_smaller_than(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.cache
def ref_mth(d: tuple[bytes, ...]) -> bytes:
    """2.1.1: MTH({}) = SHA-256(); MTH({d0}) = SHA-256(0x00 || d0); else split at k."""
    n = len(d)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + d[0])
    k = _largest_power_of_two_smaller_than(n)
    return _sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    """2.1.3.1: PATH(m, D[n])."""
    n = len(d)
    if n == 1:
        return []
    k = _largest_power_of_two_smaller_than(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: tuple[bytes, ...], b: bool) -> list[bytes]:
    """2.1.4.1: SUBPROOF(m, D[n], b)."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _largest_power_of_two_smaller_than(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: tuple[bytes, ...]) -> list[bytes]:
    """2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
    return ref_subproof(m, d, True)


# Shapes: what a verifier does with each proof element (True: the element is a left sibling). Two parameter
# sets with the same shape make the verifier do the same hashing, so a proof for one passes for the other;
# with different shapes it must fail.


def ref_path_shape(m: int, n: int) -> list[bool]:
    if n == 1:
        return []
    k = _largest_power_of_two_smaller_than(n)
    return [*ref_path_shape(m, k), False] if m < k else [*ref_path_shape(m - k, n - k), True]


def ref_proof_shape(m: int, n: int, b: bool = True) -> list[str]:
    if m == n:
        return [] if b else ["seed"]
    k = _largest_power_of_two_smaller_than(n)
    if m <= k:
        return [*ref_proof_shape(m, k, b), "right"]
    return [*ref_proof_shape(m - k, n - k, False), "left"]


# ----------------------------------------------------------------------------------------------------------------
# Fixtures

DATA: tuple[bytes, ...] = tuple(f"entry-{i}".encode() for i in range(MAX))
LEAVES: list[bytes] = [leaf_hash(d) for d in DATA]
ROOTS: list[bytes] = [ref_mth(DATA[:n]) for n in range(MAX + 1)]


def _ref_subtree(calls: list[tuple[int, int]] | None = None) -> Callable[[int, int], bytes]:
    def subtree(start: int, end: int) -> bytes:
        if calls is not None:
            calls.append((start, end))
        return ref_mth(DATA[start:end])

    return subtree


def _full_store() -> dict[tuple[int, int], bytes]:
    return {(lvl, idx): h for lvl, idx, h in new_nodes_for_append(0, LEAVES, _no_node)}


def _no_node(level: int, index: int) -> bytes:
    raise AssertionError(f"unexpected read of node ({level}, {index})")


STORE = _full_store()


def _store_subtree(start: int, end: int) -> bytes:
    return subtree_hash(start, end, lambda lvl, idx: STORE[(lvl, idx)])


def _is_rfc_node(start: int, end: int) -> bool:
    """[start, end) is a node of some RFC tree: start is a multiple of the smallest 2**j >= end - start."""
    return end > start and start % (1 << (end - start - 1).bit_length()) == 0


def _flip(h: bytes, i: int = 0) -> bytes:
    return h[:i] + bytes([h[i] ^ 0x01]) + h[i + 1 :]


# ----------------------------------------------------------------------------------------------------------------
# Hashing and roots


def test_empty_root_is_sha256_of_nothing() -> None:
    known = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert EMPTY_ROOT.hex() == known
    assert root_from_leaf_hashes([]).hex() == known
    assert ref_mth(()).hex() == known
    assert fold_ranges([]) == EMPTY_ROOT


def test_leaf_and_node_hash_domain_separation() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"l" * 32, b"r" * 32) == hashlib.sha256(b"\x01" + b"l" * 32 + b"r" * 32).digest()
    assert len(leaf_hash(b"")) == merkle.HASH_SIZE


def test_roots_match_reference_for_every_size() -> None:
    for n in range(MAX + 1):
        assert root_from_leaf_hashes(LEAVES[:n]) == ROOTS[n], n
        assert subtree_hash(0, n, lambda lvl, idx: STORE[(lvl, idx)]) == ROOTS[n], n


# The Certificate Transparency reference data (RFC 6962 test leaves, as used by google/certificate-transparency
# and transparency-dev/merkle): an independent check that the reference above reads the RFC right.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
CT_CONSISTENCY = [
    (
        2,
        8,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def test_certificate_transparency_reference_vectors() -> None:
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    data = tuple(CT_LEAVES)

    def subtree(start: int, end: int) -> bytes:
        return root_from_leaf_hashes(hashes[start:end])

    for n, want in enumerate(CT_ROOTS):
        assert root_from_leaf_hashes(hashes[:n]).hex() == want
        assert ref_mth(data[:n]).hex() == want
    for index, size, proof in CT_INCLUSION:
        assert [h.hex() for h in inclusion_proof(index, size, subtree)] == proof
        assert [h.hex() for h in ref_path(index, data[:size])] == proof
        verify_inclusion(
            hashes[index], index, size, [bytes.fromhex(h) for h in proof], bytes.fromhex(CT_ROOTS[size])
        )
    for first, second, proof in CT_CONSISTENCY:
        assert [h.hex() for h in consistency_proof(first, second, subtree)] == proof
        assert [h.hex() for h in ref_proof(first, data[:second])] == proof
        verify_consistency(
            first,
            second,
            bytes.fromhex(CT_ROOTS[first]),
            bytes.fromhex(CT_ROOTS[second]),
            [bytes.fromhex(h) for h in proof],
        )


# ----------------------------------------------------------------------------------------------------------------
# Proofs against the reference, for every size up to 64


def test_inclusion_proofs_match_reference_and_verify() -> None:
    for n in range(1, MAX + 1):
        for i in range(n):
            calls: list[tuple[int, int]] = []
            proof = inclusion_proof(i, n, _ref_subtree(calls))
            assert proof == ref_path(i, DATA[:n]), (i, n)
            assert inclusion_proof(i, n, _store_subtree) == proof, (i, n)
            assert all(_is_rfc_node(s, e) and e <= n for s, e in calls), calls
            assert len(calls) == len(proof)
            assert root_from_inclusion_proof(LEAVES[i], i, n, proof) == ROOTS[n]
            verify_inclusion(LEAVES[i], i, n, proof, ROOTS[n])


def test_consistency_proofs_match_reference_and_verify() -> None:
    for n in range(1, MAX + 1):
        for m in range(1, n + 1):
            calls: list[tuple[int, int]] = []
            proof = consistency_proof(m, n, _ref_subtree(calls))
            assert proof == ref_proof(m, DATA[:n]), (m, n)
            assert consistency_proof(m, n, _store_subtree) == proof, (m, n)
            assert all(_is_rfc_node(s, e) and e <= n for s, e in calls), calls
            verify_consistency(m, n, ROOTS[m], ROOTS[n], proof)
        assert consistency_proof(0, n, _ref_subtree()) == []
        verify_consistency(0, n, EMPTY_ROOT, ROOTS[n], [])
    assert consistency_proof(0, 0, _ref_subtree()) == []
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


def test_generators_reject_bad_arguments() -> None:
    sub = _ref_subtree()
    for index, size in [(0, 0), (3, 3), (-1, 3), (4, 3)]:
        with pytest.raises(ValueError):
            inclusion_proof(index, size, sub)
    for first, second in [(5, 3), (-1, 3), (1, 0)]:
        with pytest.raises(ValueError):
            consistency_proof(first, second, sub)


# ----------------------------------------------------------------------------------------------------------------
# Tampering


def test_tampered_inclusion_proofs_are_rejected() -> None:
    junk = b"\xab" * 32
    for n in range(1, MAX + 1):
        for i in range(n):
            proof = ref_path(i, DATA[:n])
            root = ROOTS[n]
            shape = ref_path_shape(i, n)
            for j in range(len(proof)):
                with pytest.raises(RootMismatchError):
                    verify_inclusion(LEAVES[i], i, n, [*proof[:j], _flip(proof[j], j), *proof[j + 1 :]], root)
                with pytest.raises(InvalidProofError):
                    verify_inclusion(LEAVES[i], i, n, [*proof[:j], proof[j][:31], *proof[j + 1 :]], root)
            with pytest.raises(RootMismatchError):
                verify_inclusion(_flip(LEAVES[i]), i, n, proof, root)
            with pytest.raises(RootMismatchError) as mismatch:
                verify_inclusion(LEAVES[i], i, n, proof, _flip(root, 31))
            assert mismatch.value.calculated == root
            if proof:
                with pytest.raises(InvalidProofError):
                    verify_inclusion(LEAVES[i], i, n, proof[:-1], root)
            with pytest.raises(InvalidProofError):
                verify_inclusion(LEAVES[i], i, n, [*proof, junk], root)
            with pytest.raises(InvalidProofError):
                verify_inclusion(LEAVES[i][:31], i, n, proof, root)
            # Wrong index or size: rejected unless the verifier would do exactly the same hashing.
            for wi, ws in [
                (i - 1, n),
                (i + 1, n),
                (n, n),
                (-1, n),
                (i, n - 1),
                (i, n + 1),
                (i, 2 * n),
                (i, 0),
            ]:
                if not 0 <= wi < ws or len(ref_path_shape(wi, ws)) != len(proof):
                    with pytest.raises(InvalidProofError):
                        verify_inclusion(LEAVES[i], wi, ws, proof, root)
                elif ref_path_shape(wi, ws) == shape:
                    verify_inclusion(LEAVES[i], wi, ws, proof, root)
                else:
                    with pytest.raises(RootMismatchError):
                        verify_inclusion(LEAVES[i], wi, ws, proof, root)


def test_tampered_consistency_proofs_are_rejected() -> None:
    junk = b"\xcd" * 32
    for n in range(2, MAX + 1):
        for m in range(1, n):
            proof = ref_proof(m, DATA[:n])
            shape = ref_proof_shape(m, n)
            r1, r2 = ROOTS[m], ROOTS[n]
            for j in range(len(proof)):
                with pytest.raises(RootMismatchError):
                    verify_consistency(m, n, r1, r2, [*proof[:j], _flip(proof[j], j), *proof[j + 1 :]])
                with pytest.raises(InvalidProofError):
                    verify_consistency(m, n, r1, r2, [*proof[:j], proof[j][:31], *proof[j + 1 :]])
            with pytest.raises(RootMismatchError):
                verify_consistency(m, n, _flip(r1), r2, proof)
            with pytest.raises(RootMismatchError):
                verify_consistency(m, n, r1, _flip(r2), proof)
            with pytest.raises(InvalidProofError):
                verify_consistency(m, n, r1, r2, proof[:-1])
            with pytest.raises(InvalidProofError):
                verify_consistency(m, n, r1, r2, [*proof, junk])
            with pytest.raises(InvalidProofError):
                verify_consistency(m, n, r1, r2, [])
            # Wrong sizes (same roots): rejected unless the verifier would do exactly the same hashing.
            for wm, wn in [(m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1), (n, m), (m, 2 * n)]:
                if wm > wn or wm in (0, wn) or len(ref_proof_shape(wm, wn)) != len(proof):
                    with pytest.raises(InvalidProofError):
                        verify_consistency(wm, wn, r1, r2, proof)
                elif ref_proof_shape(wm, wn) == shape:
                    verify_consistency(wm, wn, r1, r2, proof)
                else:
                    with pytest.raises(RootMismatchError):
                        verify_consistency(wm, wn, r1, r2, proof)


def test_consistency_edge_cases() -> None:
    r4, r5 = ROOTS[4], ROOTS[5]
    verify_consistency(4, 4, r4, r4, [])
    with pytest.raises(RootMismatchError):
        verify_consistency(4, 4, r4, r5, [])
    with pytest.raises(InvalidProofError):
        verify_consistency(4, 4, r4, r4, [r4])
    verify_consistency(0, 5, EMPTY_ROOT, r5, [])
    with pytest.raises(RootMismatchError):
        verify_consistency(0, 5, r4, r5, [])
    with pytest.raises(InvalidProofError):
        verify_consistency(0, 5, EMPTY_ROOT, r5, [r4])
    with pytest.raises(InvalidProofError):
        verify_consistency(5, 4, r5, r4, ref_proof(4, DATA[:5]))
    with pytest.raises(InvalidProofError):
        verify_consistency(-1, 4, r5, r4, [])
    with pytest.raises(InvalidProofError):
        verify_consistency(3, 5, r4[:31], r5, ref_proof(3, DATA[:5]))


def test_error_hierarchy() -> None:
    assert issubclass(InvalidProofError, ProofError)
    assert issubclass(RootMismatchError, ProofError)
    assert issubclass(ProofError, ValueError)
    err = RootMismatchError(b"\x01" * 32, b"\x02" * 32)
    assert err.expected == b"\x01" * 32
    assert err.calculated == b"\x02" * 32
    assert "01" * 32 in str(err)


# ----------------------------------------------------------------------------------------------------------------
# Aligned-node storage


def test_aligned_ranges_cover_every_range() -> None:
    for start in range(MAX + 1):
        for end in range(start, MAX + 1):
            ranges = aligned_ranges(start, end)
            pos = start
            for level, index in ranges:
                assert index << level == pos, (start, end, ranges)
                pos += 1 << level
            assert pos == end
            # Maximal: no node's parent lies inside the range.
            for level, index in ranges:
                parent_start, parent_end = (index >> 1) << (level + 1), ((index >> 1) + 1) << (level + 1)
                assert not start <= parent_start < parent_end <= end, (start, end, ranges)
            assert len(ranges) <= 2 * (end - start).bit_length()


def test_aligned_ranges_fold_to_mth_for_every_rfc_node() -> None:
    requested: set[tuple[int, int]] = set()
    for n in range(1, MAX + 1):
        for i in range(n):
            inclusion_proof(i, n, lambda s, e: requested.add((s, e)) or b"")
        for m in range(1, n):
            consistency_proof(m, n, lambda s, e: requested.add((s, e)) or b"")
        requested.add((0, n))
    assert all(_is_rfc_node(s, e) for s, e in requested)
    rfc_nodes = {(s, e) for s in range(MAX) for e in range(s + 1, MAX + 1) if _is_rfc_node(s, e)}
    assert requested <= rfc_nodes
    for start, end in rfc_nodes:
        ranges = aligned_ranges(start, end)
        levels = [level for level, _ in ranges]
        assert levels == sorted(set(levels), reverse=True), (start, end, ranges)
        assert len(ranges) <= (end - start).bit_length()
        hashes = [ref_mth(DATA[i << lvl : (i + 1) << lvl]) for lvl, i in ranges]
        assert fold_ranges(hashes) == ref_mth(DATA[start:end]), (start, end)
        assert subtree_hash(start, end, lambda lvl, idx: STORE[(lvl, idx)]) == ref_mth(DATA[start:end])


def test_subtree_hash_rejects_ranges_the_fold_cannot_answer() -> None:
    for start, end in [(1, 4), (2, 6), (3, 5)]:
        assert not _is_rfc_node(start, end)
        with pytest.raises(ValueError):
            subtree_hash(start, end, lambda lvl, idx: STORE[(lvl, idx)])
    with pytest.raises(ValueError):
        aligned_ranges(3, 2)
    with pytest.raises(ValueError):
        aligned_ranges(-1, 2)


def _expected_store(size: int) -> dict[tuple[int, int], bytes]:
    out = {}
    for level in range(size.bit_length()):
        for index in range(size >> level):
            out[(level, index)] = ref_mth(DATA[index << level : (index + 1) << level])
    return out


@pytest.mark.parametrize(
    "batches",
    [
        [1] * MAX,
        [MAX],
        [2] * (MAX // 2),
        [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 3],
        [7, 0, 13, 1, 1, 31, 11],
        [63, 1],
        [1, 63],
    ],
    ids=lambda b: "-".join(map(str, b[:6])) + ("..." if len(b) > 6 else ""),
)
def test_new_nodes_for_append_reproduces_every_root(batches: list[int]) -> None:
    assert sum(batches) == MAX
    store: dict[tuple[int, int], bytes] = {}
    reads: list[tuple[int, int]] = []

    def get_node(level: int, index: int) -> bytes:
        reads.append((level, index))
        return store[(level, index)]

    size = 0
    for count in batches:
        reads.clear()
        new = new_nodes_for_append(size, iter(LEAVES[size : size + count]), get_node)
        keys = [(lvl, idx) for lvl, idx, _ in new]
        assert len(set(keys)) == len(keys)
        assert not set(keys) & store.keys(), "an existing node was produced again"
        assert set(reads) <= set(aligned_ranges(0, size)), "read a node that is not on the old right edge"
        assert len(reads) == len(set(reads)) <= size.bit_count()
        seen: set[tuple[int, int]] = set(store)
        for lvl, idx, _ in new:  # children before parents
            assert lvl == 0 or {(lvl - 1, 2 * idx), (lvl - 1, 2 * idx + 1)} <= seen
            seen.add((lvl, idx))
        store.update({(lvl, idx): h for lvl, idx, h in new})
        size += count
        assert store == _expected_store(size)
        for n in range(size + 1):
            assert subtree_hash(0, n, lambda lvl, idx: store[(lvl, idx)]) == ROOTS[n]


# ----------------------------------------------------------------------------------------------------------------
# Vector file


def build_vectors() -> dict[str, object]:
    """The vector file's content, computed with the naive reference only."""
    data = tuple(f"leaf-{i}".encode() for i in range(8))
    inclusion = [(0, 1), (0, 2), (1, 2), (2, 3), (0, 5), (4, 5), (3, 6), (6, 7), (0, 8), (5, 8), (7, 8)]
    consistency = [(1, 2), (1, 8), (2, 5), (3, 7), (4, 8), (5, 8), (6, 7), (6, 8), (7, 8)]
    return {
        "description": (
            "RFC 9162 section 2.1 Merkle tree vectors, SHA-256. Leaves are the UTF-8 strings below; leaf hash "
            "is SHA-256(0x00 || leaf). roots[n] is the root of the first n leaves. Generated from the naive "
            "reference in tests/unit/test_merkle.py (python -m tests.unit.test_merkle)."
        ),
        "leaves": [d.decode() for d in data],
        "leaf_hashes": [_sha256(b"\x00" + d).hex() for d in data],
        "roots": [ref_mth(data[:n]).hex() for n in range(len(data) + 1)],
        "inclusion": [
            {"index": i, "size": n, "proof": [h.hex() for h in ref_path(i, data[:n])]} for i, n in inclusion
        ],
        "consistency": [
            {"first": m, "second": n, "proof": [h.hex() for h in ref_proof(m, data[:n])]}
            for m, n in consistency
        ],
    }


def test_vector_file() -> None:
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert vectors == build_vectors(), "vector file is stale; regenerate it"
    hashes = [leaf_hash(leaf.encode()) for leaf in vectors["leaves"]]
    assert [h.hex() for h in hashes] == vectors["leaf_hashes"]
    roots = [bytes.fromhex(r) for r in vectors["roots"]]
    assert roots[0] == EMPTY_ROOT
    for n, root in enumerate(roots):
        assert root_from_leaf_hashes(hashes[:n]) == root

    def subtree(start: int, end: int) -> bytes:
        return root_from_leaf_hashes(hashes[start:end])

    for v in vectors["inclusion"]:
        proof = [bytes.fromhex(h) for h in v["proof"]]
        assert inclusion_proof(v["index"], v["size"], subtree) == proof
        verify_inclusion(hashes[v["index"]], v["index"], v["size"], proof, roots[v["size"]])
    for v in vectors["consistency"]:
        proof = [bytes.fromhex(h) for h in v["proof"]]
        assert consistency_proof(v["first"], v["second"], subtree) == proof
        verify_consistency(v["first"], v["second"], roots[v["first"]], roots[v["second"]], proof)


if __name__ == "__main__":
    VECTORS.parent.mkdir(parents=True, exist_ok=True)
    VECTORS.write_text(json.dumps(build_vectors(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {VECTORS}")
