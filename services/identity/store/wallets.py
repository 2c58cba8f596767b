"""Identities and custodial wallets: registration, enrolment, and opening a wallet with its PIN under the
escalating lockout (`custody.PinGuard`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.identity.custody import LockoutPolicy, PinGuard, WrongPinError
from services.identity.store.common import (
    CUSTODIAL,
    SELF,
    Unseal,
    WalletLockedError,
    WrongPinAttemptError,
)
from services.identity.tables import (
    credentials,
    custodial_wallets,
    identities,
    pin_guards,
    pin_resets,
)


class WalletRecords:
    """The identity database's wallets (a part of `IdentityStore`)."""

    engine: AsyncEngine

    async def register(self, did: str, registration: Mapping[str, Any]) -> bool:
        """Register a self-held identity; True if it is new (a registered did stays as it was)."""
        statement = (
            insert(identities)
            .values(did=did, custody=SELF, registration=dict(registration), zone=registration.get("zone"))
            .on_conflict_do_nothing(index_elements=[identities.c.did])
            .returning(identities.c.did)
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(statement)).first() is not None

    async def identity(self, did: str) -> Mapping[str, Any] | None:
        """The identity row of `did`, or None if it is not registered."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(identities).where(identities.c.did == did))).mappings().first()
        return row

    async def enrol(
        self,
        did: str,
        sealed: bytes,
        salt: bytes,
        caseworker: str,
        enrolment: Mapping[str, Any],
        enrolment_id: str,
        recovery_sealed: bytes,
    ) -> tuple[str, bool]:
        """Store a new custodial identity and its sealed wallet: the did the enrolment order enrolled, and
        whether it is new.

        An order enrolled before (`enrolment_id`, even concurrently) keeps its first wallet: that did comes
        back, and `did`, `sealed` and `salt` are dropped.
        """
        earlier = select(custodial_wallets.c.did).where(custodial_wallets.c.enrolment_id == enrolment_id)
        try:
            async with self.engine.begin() as conn:
                if (found := await conn.scalar(earlier)) is not None:
                    return found, False
                await conn.execute(
                    insert(identities).values(
                        did=did, custody=CUSTODIAL, registration=dict(enrolment), zone=enrolment.get("zone")
                    )
                )
                await conn.execute(
                    insert(custodial_wallets).values(
                        did=did,
                        sealed_seed=sealed,
                        salt=salt,
                        enrolled_by=caseworker,
                        enrolment_id=enrolment_id,
                        recovery_sealed=recovery_sealed,
                        photo_sha256=enrolment.get("photo_sha256"),
                    )
                )
        except IntegrityError:
            async with self.engine.connect() as conn:
                if (found := await conn.scalar(earlier)) is not None:
                    return found, False
            raise
        return did, True

    async def open_wallet(
        self,
        did: str,
        unseal: Unseal,
        decoy: Callable[[], None],
        *,
        now: datetime,
        lockout: LockoutPolicy,
        export: bool = False,
    ) -> tuple[bytes, list[str]]:
        """The seed of `did`'s custodial wallet, if the PIN (inside `unseal`) opens it, and (with `export`) the
        credentials the city kept for the person.

        Wrong PINs are counted per did in the database (`custody.PinGuard`), so a restart does not reset them;
        a did with no wallet is counted, locked and timed (`decoy`) like a wrong PIN. The guard row is locked
        while the PIN is checked, so guesses are serialised. With `export`, the city's copies of the key and
        credentials are deleted in the same transaction that hands them out. Raises `WalletLockedError` or
        `WrongPinAttemptError`.
        """
        outcome: BaseException | None = None
        seed = b""
        kept: list[str] = []
        async with self.engine.begin() as conn:
            await conn.execute(insert(pin_guards).values(did=did).on_conflict_do_nothing())
            row = (
                (await conn.execute(select(pin_guards).where(pin_guards.c.did == did).with_for_update()))
                .mappings()
                .one()
            )
            guard = PinGuard(row["failed_attempts"], row["lockouts"], row["locked_until"])
            if guard.locked(now):
                raise WalletLockedError(guard.locked_until or now)
            wallet = (
                (await conn.execute(select(custodial_wallets).where(custodial_wallets.c.did == did)))
                .mappings()
                .first()
            )
            try:
                if wallet is None:
                    await asyncio.to_thread(decoy)
                    raise WrongPinError("no wallet")
                seed = await asyncio.to_thread(unseal, wallet["sealed_seed"], wallet["salt"])
            except WrongPinError:
                after = guard.after_wrong_pin(lockout, now)
                await conn.execute(
                    update(pin_guards)
                    .where(pin_guards.c.did == did)
                    .values(
                        failed_attempts=after.failed, lockouts=after.lockouts, locked_until=after.locked_until
                    )
                )
                # Raised after the commit, so the count sticks.
                outcome = (
                    WalletLockedError(after.locked_until)
                    if after.locked_until is not None
                    else WrongPinAttemptError(after.attempts_left(lockout))
                )
            else:
                await conn.execute(delete(pin_guards).where(pin_guards.c.did == did))
                if export:
                    held = credentials.c.subject == did, credentials.c.sd_jwt.isnot(None)
                    kept = list(
                        (
                            await conn.execute(
                                select(credentials.c.sd_jwt).where(*held).order_by(credentials.c.issued_at)
                            )
                        ).scalars()
                    )
                    await conn.execute(delete(custodial_wallets).where(custodial_wallets.c.did == did))
                    await conn.execute(update(identities).where(identities.c.did == did).values(custody=SELF))
                    await conn.execute(update(credentials).where(*held).values(sd_jwt=None))
        if outcome is not None:
            raise outcome
        return seed, kept

    async def custodial_wallet(self, did: str) -> Mapping[str, Any] | None:
        """`did`'s custodial wallet row (sealed seeds, photo on record), or None if the city holds none."""
        async with self.engine.connect() as conn:
            return (
                (await conn.execute(select(custodial_wallets).where(custodial_wallets.c.did == did)))
                .mappings()
                .first()
            )

    async def reset_pin(
        self,
        did: str,
        reset_id: str,
        caseworker: str,
        proof: str,
        order: Mapping[str, Any],
        sealed: bytes,
        salt: bytes,
    ) -> tuple[datetime, bool]:
        """Seal `did`'s wallet under a new PIN (`sealed`, `salt`) and lift any lock, for the caseworker's order
        `reset_id`: when it was carried out, and whether just now. An order carried out before (even
        concurrently) changes nothing again, whatever PIN comes with it."""
        async with self.engine.begin() as conn:
            done = (
                await conn.execute(
                    insert(pin_resets)
                    .values(reset_id=reset_id, did=did, caseworker=caseworker, proof=proof, order=dict(order))
                    .on_conflict_do_nothing(index_elements=[pin_resets.c.reset_id])
                    .returning(pin_resets.c.reset_at)
                )
            ).scalar()
            if done is not None:
                await conn.execute(
                    update(custodial_wallets)
                    .where(custodial_wallets.c.did == did)
                    .values(sealed_seed=sealed, salt=salt)
                )
                await conn.execute(delete(pin_guards).where(pin_guards.c.did == did))
                return done, True
        async with self.engine.connect() as conn:
            earlier = await conn.scalar(
                select(pin_resets.c.reset_at).where(pin_resets.c.reset_id == reset_id)
            )
        return earlier, False
