"""The AID holder: the key a person receives and spends AID with, apart from their wallet.

The derivation is the SDK's (`smartcity_sdk.aid_holder`, where its reasons are written), so a wallet app and
identity (for a custodial wallet, once the PIN opens it) derive the very same key; imported here under the
names services use.

A holder key need not be derived: the chain's privacy asks of it only that nobody can link it to the wallet, and
a key generated independently of the wallet's is as unlinkable. The portal's browser wallet has one such key
(`services/portal/static/js/wallet-vault.js`): WebCrypto has no BLAKE2b and its wallet key is not extractable,
so it generates an AID holder key with the wallet and keeps it in the wallet's encrypted backup. Derivation is
what lets a wallet re-find its holder key from its seed alone; an independent key must be backed up beside it.
"""

from __future__ import annotations

from smartcity_sdk.aid_holder import AID, aid_holder

__all__ = ["AID", "aid_holder"]
