"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proof verification, section 2.1.

Pure functions, no I/O. Every hash is 32 ``bytes`` (SHA-256). The ledger's chain is one such tree: a leaf is
the JCS bytes of a transaction record, each signed block header (a checkpoint) carries the root of the first
``tree_size`` leaves, and the ledger serves inclusion proofs (a transaction is in the tree) and consistency
proofs (a smaller tree is a prefix of a larger one). These functions check them with nothing but hashes; proof
generation is the ledger's (``services/common/merkle.py``).

Verification implements the iterative algorithms of RFC 9162 2.1.3.2 and 2.1.4.2 and raises a subclass of
:class:`ProofError` on failure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
"""Size in bytes of every hash (SHA-256)."""

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""MTH of the empty tree: SHA-256 of the empty string (``e3b0c442...``)."""


class ProofError(ValueError):
    """Base class of every proof verification failure."""


class InvalidProofError(ProofError):
    """The proof cannot be right whatever the hashes: wrong length, index/size out of range, bad hash size."""


class RootMismatchError(ProofError):
    """The proof is well formed but the root it leads to is not the expected one."""

    def __init__(self, expected: bytes, calculated: bytes, what: str = "root") -> None:
        self.expected = expected
        self.calculated = calculated
        super().__init__(f"{what} mismatch: calculated {calculated.hex()}, expected {expected.hex()}")


# --------------------------------------------------------------------------------------------------------------
# Hashing (RFC 9162 2.1.1)


def leaf_hash(data: bytes) -> bytes:
    """Return the hash of a leaf entry: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


# --------------------------------------------------------------------------------------------------------------
# Verification (RFC 9162 2.1.3.2 and 2.1.4.2)


def _check_hash(h: bytes, what: str) -> None:
    if len(h) != HASH_SIZE:
        raise InvalidProofError(f"{what} is {len(h)} bytes, expected {HASH_SIZE}")


def inclusion_length(index: int, size: int) -> int:
    """Length of ``PATH(index, D[size])``: levels below the last shared ancestor, plus right-edge nodes."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Return the root that ``proof`` leads to for leaf hash ``leaf`` at ``index`` in a tree of ``size``.

    Raises :class:`InvalidProofError` if ``index`` is not in ``[0, size)``, a hash is not 32 bytes or the
    proof has the wrong length for ``(index, size)``.
    """
    if not 0 <= index < size:
        raise InvalidProofError(f"leaf index {index} out of range for tree size {size}")
    _check_hash(leaf, "leaf hash")
    for i, p in enumerate(proof):
        if len(p) != HASH_SIZE:  # the message is built only on failure: proofs are checked in bulk
            _check_hash(p, f"proof[{i}]")
    want = inclusion_length(index, size)
    if len(proof) != want:
        raise InvalidProofError(f"inclusion proof has {len(proof)} hashes, expected {want}")
    sha256 = hashlib.sha256
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:  # unreachable after the length check; kept as in the RFC
            raise InvalidProofError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r).digest()  # node_hash(p, r), inlined: this loop is hot
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # unreachable after the length check; kept as in the RFC
        raise InvalidProofError("inclusion proof too short")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``proof`` proves leaf hash ``leaf`` is at ``index`` of the tree of ``size`` with ``root``.

    Returns ``None`` on success; raises :class:`InvalidProofError` (see :func:`root_from_inclusion_proof`)
    or :class:`RootMismatchError`.
    """
    calculated = root_from_inclusion_proof(leaf, index, size, proof)
    if calculated != root:
        raise RootMismatchError(root, calculated)


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that ``proof`` proves the tree ``(first, first_root)`` is a prefix of ``(second, second_root)``.

    Returns ``None`` on success. Edge cases as in transparency-dev/merkle: ``first == second`` needs an empty
    proof and equal roots; ``first == 0`` needs an empty proof and ``first_root == EMPTY_ROOT``. Raises
    :class:`InvalidProofError` if ``not 0 <= first <= second``, a hash is not 32 bytes or the proof has the
    wrong length, and :class:`RootMismatchError` if either computed root differs from the given one.
    """
    if not 0 <= first <= second:
        raise InvalidProofError(f"consistency proof needs 0 <= first <= second, got {first} and {second}")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
    if first == second or first == 0:
        if proof:
            raise InvalidProofError(
                f"expected an empty proof for sizes {first} -> {second}, got {len(proof)}"
            )
        if first == 0:
            if first_root != EMPTY_ROOT:
                raise RootMismatchError(EMPTY_ROOT, first_root, "empty tree root")
        elif first_root != second_root:
            raise RootMismatchError(first_root, second_root, "equal-size roots")
        return
    _check_hash(first_root, "first root")
    # Length: inclusion path of leaf first-1 in the second tree, minus the levels inside the largest complete
    # subtree ending at first (whose hash is either proof[0] or, if first is a power of two, first_root).
    shift = (first & -first).bit_length() - 1
    want = inclusion_length(first - 1, second) - shift + (0 if first == 1 << shift else 1)
    if len(proof) != want:
        raise InvalidProofError(f"consistency proof has {len(proof)} hashes, expected {want}")

    path = [first_root, *proof] if first == 1 << shift else list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # unreachable after the length check; kept as in the RFC
            raise InvalidProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # unreachable after the length check; kept as in the RFC
        raise InvalidProofError("consistency proof too short")
    if fr != first_root:
        raise RootMismatchError(first_root, fr, "first root")
    if sr != second_root:
        raise RootMismatchError(second_root, sr, "second root")
