"""The AID holder: the key a person receives and spends AID with, apart from their wallet.

The chain is public, and a grant names the account it pays. Naming the person's wallet would tell anyone who
knows that wallet (a neighbour they paid, a shop, a reward's public record) that they receive AID. So AID goes
to a key of its own, derived from the wallet's secret for this one purpose: the chain shows grants to, and
spends by, a did:key that nobody can link to the wallet without the wallet's secret. The person's wallet app
(or, for a custodial wallet, identity when their PIN opens it) derives it again whenever they spend AID; the
chain still shows every grant's amount, categories and eligibility, and every spend's signature, so the AID
audit needs no personal data.

Hand-written: the derivation is one keyed BLAKE2b of the seed (PyNaCl's), the whole of a single-purpose,
non-hierarchical child key; a hierarchical scheme (SLIP-0010's hardened Ed25519 derivation) would do the same
job with a dependency and a path format for one line.
"""

from __future__ import annotations

from typing import TypeVar

from nacl import hash as nacl_hash
from nacl.encoding import RawEncoder

from smartcity_sdk.signing import Keypair

AID = "AID"
"""The currency an AID holder key holds."""
_PURPOSE = b"smartcity-aid-v1"  # BLAKE2b's personalisation: at most 16 bytes

K = TypeVar("K", bound=Keypair)


def aid_holder(wallet: K) -> K:
    """The AID holder key of `wallet`: the same for the same wallet, unlinkable to it without its seed (a key
    of the wallet's own class, so a service's key stays one)."""
    seed = nacl_hash.blake2b(b"", key=wallet.seed, person=_PURPOSE, digest_size=32, encoder=RawEncoder)
    return type(wallet).from_seed(seed)
