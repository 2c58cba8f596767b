"""The identity database: identities and custodial wallets, credentials, consents, notices, service records,
custodial transfers and erasures, one module each; `IdentityStore` is all of them over one engine."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.identity.store.bindings import BindingLimitError, BindingRecords
from services.identity.store.common import (
    CUSTODIAL,
    SELF,
    SignTransfer,
    StaleConsentError,
    Unseal,
    WalletLockedError,
    WrongPinAttemptError,
)
from services.identity.store.consents import ConsentRecords
from services.identity.store.credentials import CredentialRecords
from services.identity.store.erasures import ErasureRecords
from services.identity.store.notices import NoticeRecords
from services.identity.store.service_records import ServiceRecords
from services.identity.store.transfers import TransferRecords
from services.identity.store.wallets import WalletRecords

__all__ = [
    "CUSTODIAL",
    "SELF",
    "BindingLimitError",
    "IdentityStore",
    "SignTransfer",
    "StaleConsentError",
    "Unseal",
    "WalletLockedError",
    "WrongPinAttemptError",
]


class IdentityStore(
    WalletRecords,
    CredentialRecords,
    ConsentRecords,
    BindingRecords,
    NoticeRecords,
    ServiceRecords,
    TransferRecords,
    ErasureRecords,
):
    """The identity service's database access."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
