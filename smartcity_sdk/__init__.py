"""A Python SDK for city apps: keys and signed objects the platform's way, typed clients of its services with
retries, signed reads, memo commitments, the AID holder key, and checks of the ledger's proofs.

It needs only httpx, PyNaCl, rfc8785, base58 and http-message-signatures (README.md), and imports nothing of the
platform's services (they import it: one implementation of each primitive serves both sides).

    from smartcity_sdk import Keypair, LedgerClient

    wallet = Keypair.from_file("wallet.key")
    with LedgerClient("http://127.0.0.1:8103") as ledger:
        print(ledger.account(wallet.did, wallet)["balances"])
"""

from smartcity_sdk.aid_holder import aid_holder
from smartcity_sdk.directory import DirectoryClient
from smartcity_sdk.errors import ProblemError
from smartcity_sdk.http import RetryPolicy
from smartcity_sdk.identity import IdentityClient
from smartcity_sdk.ingest import IngestClient
from smartcity_sdk.ledger import AID, CITY, CREDIT, MICRO, LedgerClient
from smartcity_sdk.memos import commit_memo, open_memo
from smartcity_sdk.portal import PortalClient
from smartcity_sdk.proofs import VerificationError, verify_checkpoint, verify_extends, verify_included
from smartcity_sdk.signed_reads import SignedReadAuth
from smartcity_sdk.signing import Keypair

__all__ = [
    "AID",
    "CITY",
    "CREDIT",
    "MICRO",
    "DirectoryClient",
    "IdentityClient",
    "IngestClient",
    "Keypair",
    "LedgerClient",
    "PortalClient",
    "ProblemError",
    "RetryPolicy",
    "SignedReadAuth",
    "VerificationError",
    "aid_holder",
    "commit_memo",
    "open_memo",
    "verify_checkpoint",
    "verify_extends",
    "verify_included",
]
