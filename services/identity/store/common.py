"""What the identity database's parts share: custody kinds, errors and callables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

CUSTODIAL = "custodial"
SELF = "self"


class WalletLockedError(RuntimeError):
    """Too many wrong PINs: the wallet stays locked until `until`."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"locked until {until.isoformat()}")
        self.until = until


class WrongPinAttemptError(ValueError):
    """A wrong PIN, counted; `remaining` attempts are left before the wallet locks."""

    def __init__(self, remaining: int) -> None:
        super().__init__("wrong PIN")
        self.remaining = remaining


class StaleConsentError(ValueError):
    """A consent change that is not newer than the one stored (a replay, or out of order)."""


SignTransfer = Callable[[int], dict[str, Any]]
"""nonce -> the holder's signed transfer with that nonce."""

Unseal = Callable[[bytes, bytes], bytes]
"""(sealed seed, salt) -> seed; raises `WrongPinError`."""
