"""The chain's Merkle tree as the store keeps it: complete aligned nodes (pure).

The store keeps every complete aligned node ``(level, index)`` of the tree (leaves at level 0); they never
change once complete. Appending leaves needs the ``O(log n)`` nodes of the current frontier, a proof needs
``O(log n)`` nodes: these functions say which to read and compute with what was read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from services.common import merkle

NodeKey = tuple[int, int]
"""(level, index) of an aligned node covering leaves ``[index * 2**level, (index + 1) * 2**level)``."""
T = TypeVar("T")
ProofBuilder = Callable[[merkle.SubtreeFn], T]
"""A computation over a ``subtree(start, end)`` callable, e.g. ``lambda st: merkle.inclusion_proof(i, n, st)``."""


def nodes_read_by(build: ProofBuilder[object]) -> list[NodeKey]:
    """The stored nodes `build` needs, found by running it once over placeholder hashes.

    Proof generation only depends on sizes and indexes, never on hash values, so the ranges it asks for
    are the same in the dry run as in the real one.
    """
    wanted: dict[NodeKey, None] = {}

    def record(start: int, end: int) -> bytes:
        wanted.update(dict.fromkeys(merkle.aligned_ranges(start, end)))
        return merkle.EMPTY_ROOT

    build(record)
    return list(wanted)


def run_on_nodes(build: ProofBuilder[T], nodes: Mapping[NodeKey, bytes]) -> T:
    """Run `build` over stored node hashes (those of `nodes_read_by(build)`)."""

    def subtree(start: int, end: int) -> bytes:
        return merkle.subtree_hash(start, end, lambda level, index: nodes[(level, index)])

    return build(subtree)


def frontier(size: int) -> list[NodeKey]:
    """The nodes an append to a tree of `size` leaves reads (and whose fold is that tree's root)."""
    return merkle.aligned_ranges(0, size)


def append(
    size_before: int, leaf_hashes: Sequence[bytes], frontier_nodes: Mapping[NodeKey, bytes]
) -> tuple[list[tuple[int, int, bytes]], bytes]:
    """Append leaves to the tree of `size_before` leaves whose `frontier` nodes are `frontier_nodes`.

    Returns the newly complete nodes ``(level, index, hash)`` to store (the leaves included) and the root
    of the tree of ``size_before + len(leaf_hashes)`` leaves.
    """
    new_nodes = merkle.new_nodes_for_append(size_before, leaf_hashes, lambda lv, ix: frontier_nodes[(lv, ix)])
    known = {**frontier_nodes, **{(level, index): h for level, index, h in new_nodes}}
    size = size_before + len(leaf_hashes)
    root = merkle.subtree_hash(0, size, lambda lv, ix: known[(lv, ix)])
    return new_nodes, root
