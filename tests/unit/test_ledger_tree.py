"""The stored-node view of the Merkle tree: appends and proofs from O(log n) stored nodes."""

from __future__ import annotations

import random

from services.common import merkle
from services.ledger import tree


def leaf(i: int) -> bytes:
    return merkle.leaf_hash(f"tx-{i}".encode())


def grow(batches: list[int]) -> tuple[dict[tree.NodeKey, bytes], list[bytes], list[bytes]]:
    """Append batches as the sealer does; return the stored nodes, all leaf hashes and each root."""
    stored: dict[tree.NodeKey, bytes] = {}
    leaves: list[bytes] = []
    roots: list[bytes] = []
    for count in batches:
        size = len(leaves)
        frontier = {key: stored[key] for key in tree.frontier(size)}
        batch = [leaf(i) for i in range(size, size + count)]
        new_nodes, root = tree.append(size, batch, frontier)
        for level, index, h in new_nodes:
            assert (level, index) not in stored  # complete nodes are written once, never rewritten
            stored[(level, index)] = h
        leaves += batch
        roots.append(root)
    return stored, leaves, roots


def test_appends_in_any_batches_give_the_rfc_roots() -> None:
    rng = random.Random(9162)
    batches = [rng.randint(1, 40) for _ in range(25)]
    stored, leaves, roots = grow(batches)
    size = 0
    for count, root in zip(batches, roots, strict=True):
        size += count
        assert root == merkle.root_from_leaf_hashes(leaves[:size])
    assert tree.append(size, [], {k: stored[k] for k in tree.frontier(size)}) == ([], roots[-1])
    assert tree.append(0, [], {}) == ([], merkle.EMPTY_ROOT)


def test_proofs_from_stored_nodes_verify_and_read_few_nodes() -> None:
    stored, leaves, _ = grow([1, 2, 7, 50, 200, 3])
    n = len(leaves)
    for size in (1, 2, 7, 64, 100, n):
        root = merkle.root_from_leaf_hashes(leaves[:size])
        for index in {0, size // 2, size - 1}:

            def build(st: merkle.SubtreeFn, index: int = index, size: int = size) -> list[bytes]:
                return merkle.inclusion_proof(index, size, st)

            wanted = tree.nodes_read_by(build)
            assert len(wanted) <= 2 * size.bit_length()
            proof = tree.run_on_nodes(build, {key: stored[key] for key in wanted})
            merkle.verify_inclusion(leaves[index], index, size, proof, root)
        for first in (1, size // 3 or 1, size):

            def build_c(st: merkle.SubtreeFn, first: int = first, size: int = size) -> list[bytes]:
                return merkle.consistency_proof(first, size, st)

            wanted = tree.nodes_read_by(build_c)
            proof = tree.run_on_nodes(build_c, {key: stored[key] for key in wanted})
            merkle.verify_consistency(first, size, merkle.root_from_leaf_hashes(leaves[:first]), root, proof)


def test_a_proof_at_a_million_leaves_reads_a_few_dozen_nodes() -> None:
    size = 1_000_003

    def build(st: merkle.SubtreeFn) -> list[bytes]:
        return merkle.inclusion_proof(123_457, size, st)

    assert len(tree.nodes_read_by(build)) <= 2 * size.bit_length()
    assert len(tree.frontier(size)) == size.bit_count()
