"""A new wallet gets CITY and pays a local merchant with a memo, then reads its balance and the memo.

1. a wallet key is made (or read from ``--wallet-key``) and its did:key registered with identity;
2. a merchant registers in the directory, locally owned (CITY goes only to the community);
3. the city's issuer mints CITY into the wallet (``--issuer-key``: a key holding the issuer role on the chain);
4. the wallet pays the merchant with a memo, which the chain holds only as a salted digest;
5. the wallet reads its balance and next nonce, and the merchant reads the memo (signed reads).

    python smartcity_sdk/examples/wallet_pays_a_merchant.py --issuer-key issuer.key

On a development stack, give the issuer role to a key first: start it with ``LEDGER_ISSUER_KEYS=<its did>``, or
grant it (``smartcity authority grant issuer <did>``, signed with the data dir's root key).
"""

from __future__ import annotations

import os
from pathlib import Path

from smartcity_sdk import CITY, MICRO, DirectoryClient, IdentityClient, Keypair, LedgerClient
from smartcity_sdk.examples.common import fail, key_file, parser, run

MINTED = 10 * MICRO
PAID = 2_500_000  # 2.5 CITY, in micro-CITY
MEMO = "two coffees and a croissant"


def main() -> None:
    arguments = parser(__doc__.splitlines()[0], "ledger", "identity", "directory")
    arguments.add_argument(
        "--issuer-key",
        type=Path,
        default=os.environ.get("SMARTCITY_ISSUER_KEY"),
        help="file holding the base64url seed of a key with the issuer role (env SMARTCITY_ISSUER_KEY)",
    )
    arguments.add_argument("--wallet-key", type=Path, help="the wallet's key file (default: a new key)")
    args = arguments.parse_args()
    if args.issuer_key is None:
        fail("give --issuer-key (or SMARTCITY_ISSUER_KEY): a key holding the issuer role mints the CITY")
    issuer = key_file(args.issuer_key, "the issuer key")
    wallet = key_file(args.wallet_key, "the wallet key") if args.wallet_key else Keypair.generate()
    merchant = Keypair.generate()

    with (
        LedgerClient(args.ledger) as ledger,
        IdentityClient(args.identity) as identity,
        DirectoryClient(args.directory) as directory,
    ):
        registered = identity.register(wallet)
        print(f"wallet: {wallet.did} registered ({registered['custody']} custody)")

        shop = directory.register_merchant(
            merchant,
            name=f"Corner Café {merchant.did[-6:]}",
            category="food",
            locally_owned=True,
            accepts=[CITY],
            lat=52.3702,
            lon=4.8952,
        )
        print(f"merchant: {shop['name']} ({shop['wallet']}) in the directory")

        minted = ledger.issuer_command(issuer, "mint", to=wallet.did, currency=CITY, amount=MINTED)
        print(f"minted: {MINTED / MICRO:.6f} CITY to the wallet in {minted['tx_id']}")

        receipt = ledger.transfer(wallet, merchant.did, PAID, CITY, memo=MEMO)
        tx_id = receipt["tx_id"]
        print(f"paid: {PAID / MICRO:.6f} CITY to the merchant in {tx_id} ({receipt['status']})")

        public = ledger.transaction(tx_id)["transfer"]
        if MEMO in str(public) or "memo_digest" not in public:
            fail(f"the public record should hold the memo's digest only: {public}")
        print(f"public record: memo_digest {public['memo_digest']}, no memo text")

        balance = ledger.account(wallet.did, wallet)["balances"][CITY]
        print(f"balance: {balance / MICRO:.6f} CITY")
        if balance != MINTED - PAID:
            fail(f"the wallet holds {balance} micro-CITY, expected {MINTED - PAID}")
        print(f"next nonce: {ledger.next_nonce(wallet.did, wallet)['next_nonce']}")

        memo = ledger.memo(tx_id, merchant)
        print(f"memo read by the merchant: {memo.get('memo')}")
        if memo.get("memo") != MEMO:
            fail(f"the merchant read {memo!r}, expected the memo {MEMO!r}")


if __name__ == "__main__":
    run(main)
