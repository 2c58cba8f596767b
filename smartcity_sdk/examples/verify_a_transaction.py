"""Check a transaction on the ledger with nothing but the ledger's public key.

1. the latest checkpoint (signed block header) is signed by the ledger's key;
2. the transaction's record (``--tx``, default: the latest block's last transaction) is a leaf of the tree whose
   root that checkpoint signs (an RFC 9162 inclusion proof);
3. the tree of the first block is a prefix of the latest one (a consistency proof): nothing was rewritten.

    python smartcity_sdk/examples/verify_a_transaction.py --ledger-key did:key:z6Mk... [--tx TX_ID]

The ledger's key must come from elsewhere than the ledger's answers. On a development stack it is the key of
``<data dir>/ledger/signing.key``, which ``--data-dir`` reads when ``--ledger-key`` is not given.
"""

from __future__ import annotations

import os

from smartcity_sdk import LedgerClient, verify_checkpoint, verify_extends
from smartcity_sdk.examples.common import data_dir_argument, fail, key_file, parser, run


def latest_transaction(ledger: LedgerClient, height: int) -> str:
    """The last transaction of the highest block holding one, at or below `height`."""
    for below in range(height, -1, -1):
        if tx_ids := ledger.block(below)["tx_ids"]:
            return tx_ids[-1]
    fail("the chain holds no transaction yet")


def main() -> None:
    arguments = parser(__doc__.splitlines()[0], "ledger")
    arguments.add_argument(
        "--ledger-key",
        default=os.environ.get("SMARTCITY_LEDGER_KEY"),
        help="the ledger's did:key, the one thing trusted (env SMARTCITY_LEDGER_KEY)",
    )
    arguments.add_argument("--tx", help="the transaction to check (default: the latest one)")
    data_dir_argument(arguments)
    args = arguments.parse_args()
    ledger_key = args.ledger_key or key_file(args.data_dir / "ledger" / "signing.key", "the ledger key").did
    print(f"trusting the ledger key {ledger_key}")

    with LedgerClient(args.ledger) as ledger:
        tx_id = args.tx or latest_transaction(ledger, ledger.checkpoint()["height"])
        checked = ledger.verified_transaction(tx_id, ledger_key)
        checkpoint, proof, record = checked["checkpoint"], checked["proof"], checked["record"]
        print(
            f"checkpoint {checkpoint['height']}: {checkpoint['tree_size']} leaves, signed by the ledger key: OK"
        )
        print(
            f"transaction {tx_id} ({record['type']}) is leaf {proof['leaf_index']} of that tree, "
            f"{len(proof['audit_path'])} hashes of proof: OK"
        )

        first = ledger.block(0)
        verify_checkpoint(first, ledger_key)
        verify_extends(first, checkpoint, ledger.consistency(first["tree_size"], checkpoint["tree_size"]))
        print(
            f"the chain grew from {first['tree_size']} to {checkpoint['tree_size']} leaves without rewriting "
            "any: OK"
        )


if __name__ == "__main__":
    run(main)
