"""Merkle tree proofs per RFC 9162 (Certificate Transparency v2), section 2.1: generating them, and the aligned
nodes a store keeps.

Pure functions, no I/O. Every hash is 32 ``bytes`` (SHA-256).

Notation: ``MTH(D[a:b])`` is the Merkle Tree Hash (RFC 9162 2.1.1) of leaves ``a`` (inclusive) to ``b``
(exclusive) of the log, taken as a tree of its own. A tree of ``n > 1`` leaves is split at ``k``, the largest
power of two smaller than ``n``.

Proof generation never needs all the leaves: it asks a ``subtree(start, end)`` callable for the MTH of the
few ranges the proof consists of. Every range requested is a node of the RFC tree, so ``start`` is a multiple
of the smallest power of two ``>= end - start``. Such a range is covered by at most ``log2(end - start) + 1``
*aligned* nodes (level ``L``, index ``i`` covering ``[i * 2**L, (i + 1) * 2**L)``), which is what a store
keeps: :func:`new_nodes_for_append` says which nodes to write as leaves arrive, :func:`aligned_ranges` which
to read, :func:`fold_ranges` (or :func:`subtree_hash`, which does both) how to combine them.

Hashing and verification are the SDK's (`smartcity_sdk.merkle`, what a client checks proofs with), imported
here under the names services use; this module generates proofs and keeps the aligned nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise

from smartcity_sdk.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    InvalidProofError,
    ProofError,
    RootMismatchError,
    inclusion_length,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "InvalidProofError",
    "ProofError",
    "RootMismatchError",
    "aligned_ranges",
    "consistency_proof",
    "fold_ranges",
    "inclusion_length",
    "inclusion_proof",
    "leaf_hash",
    "new_nodes_for_append",
    "node_hash",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "subtree_hash",
    "verify_consistency",
    "verify_inclusion",
]

SubtreeFn = Callable[[int, int], bytes]
"""``subtree(start, end)`` returns ``MTH(D[start:end])``; see :func:`inclusion_proof`."""

GetNodeFn = Callable[[int, int], bytes]
"""``get_node(level, index)`` returns the stored hash of the aligned node ``(level, index)``."""


# --------------------------------------------------------------------------------------------------------------
# Hashing (RFC 9162 2.1.1)


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Return the MTH of a whole tree given its leaf hashes (already passed through :func:`leaf_hash`).

    ``root_from_leaf_hashes([]) == EMPTY_ROOT``. Costs ``n - 1`` node hashes.
    """

    def mth(start: int, end: int) -> bytes:
        if end - start == 1:
            return hashes[start]
        mid = start + _split(end - start)
        return node_hash(mth(start, mid), mth(mid, end))

    return mth(0, len(hashes)) if hashes else EMPTY_ROOT


# --------------------------------------------------------------------------------------------------------------
# Proof generation (RFC 9162 2.1.3.1 and 2.1.4.1)


def inclusion_proof(index: int, size: int, subtree: SubtreeFn) -> list[bytes]:
    """Return ``PATH(index, D[size])``, the inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    ``subtree(start, end)`` must return ``MTH(D[start:end])``; it is called once per proof element, each time
    for a node of the tree (see the module docstring). The proof is ordered from the leaf up to the root, as
    in the RFC. Raises ``ValueError`` unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} out of range for tree size {size}")
    siblings: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _split(end - start)
        if index < mid:
            siblings.append(subtree(mid, end))
            end = mid
        else:
            siblings.append(subtree(start, mid))
            start = mid
    siblings.reverse()
    return siblings


def consistency_proof(first: int, second: int, subtree: SubtreeFn) -> list[bytes]:
    """Return ``PROOF(first, D[second])``, proving the tree of ``first`` leaves is a prefix of ``second``'s.

    ``subtree`` is as for :func:`inclusion_proof`. The proof is empty when ``first == 0`` or
    ``first == second`` (RFC 9162 only defines ``0 < first < second``). Raises ``ValueError`` unless
    ``0 <= first <= second``.
    """
    if not 0 <= first <= second:
        raise ValueError(f"consistency proof needs 0 <= first <= second, got {first} and {second}")
    if first in (0, second):
        return []
    siblings: list[bytes] = []
    start, end = 0, second
    complete = True  # the RFC's b: is [start, end) still the whole of the first tree's left edge?
    while first != end:  # SUBPROOF(first - start, D[start:end], complete) with first - start < end - start
        mid = start + _split(end - start)
        if first <= mid:
            siblings.append(subtree(mid, end))
            end = mid
        else:
            siblings.append(subtree(start, mid))
            start = mid
            complete = False
    siblings.reverse()
    return siblings if complete else [subtree(start, end), *siblings]


# --------------------------------------------------------------------------------------------------------------
# Aligned-node storage


def aligned_ranges(start: int, end: int) -> list[tuple[int, int]]:
    """Decompose ``[start, end)`` into maximal aligned complete subtrees, left to right.

    Returns ``(level, index)`` pairs, node ``(L, i)`` covering leaves ``[i * 2**L, (i + 1) * 2**L)``; there
    are at most ``2 * (end - start).bit_length()`` of them. When the range is a node of an RFC tree, as the
    root ``[0, size)`` and every range :func:`inclusion_proof` and :func:`consistency_proof` request are,
    there are at most ``(end - start).bit_length()``, with strictly decreasing levels. Empty when
    ``start == end``. Raises ``ValueError`` unless ``0 <= start <= end``.
    """
    if not 0 <= start <= end:
        raise ValueError(f"invalid range [{start}, {end})")
    out: list[tuple[int, int]] = []
    while start < end:
        # Largest level at which start is aligned (unbounded at 0) and which still fits in the range.
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold_ranges(hashes: Sequence[bytes]) -> bytes:
    """Combine the node hashes of :func:`aligned_ranges` ``(start, end)`` into ``MTH(D[start:end])``.

    Folds right to left: ``node_hash(h0, node_hash(h1, ... node_hash(h[-2], h[-1])))``. This equals the MTH
    when the levels are strictly decreasing, which holds for every node of an RFC tree (and ``[0, size)``);
    see :func:`subtree_hash` for a checked version. ``fold_ranges([]) == EMPTY_ROOT``.
    """
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def subtree_hash(start: int, end: int, get_node: GetNodeFn) -> bytes:
    """Return ``MTH(D[start:end])`` from stored aligned nodes, reading ``O(log(end - start))`` of them.

    ``get_node(level, index)`` returns a stored node hash. ``functools.partial(subtree_hash,
    get_node=...)`` or a lambda over it is a ready ``subtree`` callable for the proof functions, and
    ``subtree_hash(0, size, get_node)`` is the root. Raises ``ValueError`` if ``[start, end)`` is not a
    range the fold can answer (its aligned decomposition does not have strictly decreasing levels); that
    never happens for ranges requested by this module.
    """
    ranges = aligned_ranges(start, end)
    if any(a[0] <= b[0] for a, b in pairwise(ranges)):
        raise ValueError(f"[{start}, {end}) is not a node of an RFC 9162 tree")
    return fold_ranges([get_node(level, index) for level, index in ranges])


def new_nodes_for_append(
    size_before: int, new_leaf_hashes: Iterable[bytes], get_node: GetNodeFn
) -> list[tuple[int, int, bytes]]:
    """Return the aligned nodes ``(level, index, hash)`` that appending leaves completes, to be stored.

    ``size_before`` is the tree size before the append and ``new_leaf_hashes`` the leaf hashes appended (at
    indexes ``size_before``, ``size_before + 1``, ...). The result holds every newly complete node, the
    leaves themselves included as level 0, each after its two children. ``get_node(level, index)`` is only
    asked for nodes complete at ``size_before``: those of ``aligned_ranges(0, size_before)``, each at most
    once. Nodes created within the batch are not fetched.
    """
    if size_before < 0:
        raise ValueError(f"negative tree size {size_before}")
    out: list[tuple[int, int, bytes]] = []
    made: dict[tuple[int, int], bytes] = {}
    for position, h in enumerate(new_leaf_hashes, start=size_before):
        level, index = 0, position
        out.append((level, index, h))
        while index & 1:  # a right child completes its parent
            sibling = made.pop((level, index - 1), None)
            left = get_node(level, index - 1) if sibling is None else sibling
            h = node_hash(left, h)
            level, index = level + 1, index >> 1
            out.append((level, index, h))
        made[(level, index)] = h
    return out
