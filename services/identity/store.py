"""Identities, custodial wallets, credentials, consents, notices and service records in the identity database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.consents import ConsentChange
from services.identity.custody import LockoutPolicy, PinGuard, WrongPinError
from services.identity.tables import (
    consents,
    credentials,
    custodial_transfers,
    custodial_wallets,
    identities,
    notices,
    pin_guards,
    service_records,
)

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


class IdentityStore:
    """The identity service's database access."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def register(self, did: str, registration: Mapping[str, Any]) -> bool:
        """Register a self-held identity; True if it is new (a registered did stays as it was)."""
        statement = (
            insert(identities)
            .values(did=did, custody=SELF, registration=dict(registration))
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
                    insert(identities).values(did=did, custody=CUSTODIAL, registration=dict(enrolment))
                )
                await conn.execute(
                    insert(custodial_wallets).values(
                        did=did,
                        sealed_seed=sealed,
                        salt=salt,
                        enrolled_by=caseworker,
                        enrolment_id=enrolment_id,
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

    async def add_credential(
        self,
        credential_id: str,
        subject: str,
        *,
        vct: str,
        issued_by: str,
        issued_at: datetime,
        expires_at: datetime,
        build: Callable[[int], str],
        keep: bool,
    ) -> tuple[str, int] | None:
        """Store a credential, whose SD-JWT `build(status_index)` makes; None if `credential_id` exists.

        The SD-JWT is kept only when `keep` (custodial holders present through the service).
        """
        async with self.engine.begin() as conn:
            try:
                index = (
                    await conn.execute(
                        insert(credentials)
                        .values(
                            credential_id=credential_id,
                            subject=subject,
                            vct=vct,
                            issued_by=issued_by,
                            issued_at=issued_at,
                            expires_at=expires_at,
                        )
                        .returning(credentials.c.status_index)
                    )
                ).scalar_one()
            except IntegrityError:
                return None
            sd_jwt = build(index)
            if keep:
                await conn.execute(
                    update(credentials)
                    .where(credentials.c.credential_id == credential_id)
                    .values(sd_jwt=sd_jwt)
                )
        return sd_jwt, index

    async def revoke(self, credential_id: str, now: datetime) -> Mapping[str, Any] | None:
        """Revoke a credential (once; revoking again keeps the first time); None if there is no such one."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(credentials)
                .where(credentials.c.credential_id == credential_id, credentials.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = (
                (await conn.execute(select(credentials).where(credentials.c.credential_id == credential_id)))
                .mappings()
                .first()
            )
        return row

    async def is_revoked(self, status_index: int) -> bool:
        """True if the credential at `status_index` is revoked."""
        async with self.engine.connect() as conn:
            revoked_at = (
                await conn.execute(
                    select(credentials.c.revoked_at).where(credentials.c.status_index == status_index)
                )
            ).scalar_one_or_none()
        return revoked_at is not None

    async def status_list(self) -> tuple[list[int], int]:
        """The revoked status indices, and the size of the list (one past the highest index)."""
        async with self.engine.connect() as conn:
            revoked = (
                await conn.execute(
                    select(credentials.c.status_index).where(credentials.c.revoked_at.isnot(None))
                )
            ).scalars()
            indices = list(revoked)
            size = (await conn.execute(select(func.max(credentials.c.status_index)))).scalar_one_or_none()
        return indices, (size + 1 if size is not None else 0)

    async def custodial_credential(self, did: str, now: datetime) -> str | None:
        """The newest valid (unrevoked, unexpired) credential kept for a custodial holder."""
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    select(credentials.c.sd_jwt)
                    .where(
                        credentials.c.subject == did,
                        credentials.c.sd_jwt.isnot(None),
                        credentials.c.revoked_at.is_(None),
                        credentials.c.expires_at > now,
                    )
                    .order_by(credentials.c.issued_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()

    async def change_consent(
        self,
        change: ConsentChange,
        receipt: Callable[[datetime], dict[str, Any]],
        publish: Callable[[datetime], Awaitable[None]],
        now: datetime,
    ) -> dict[str, Any]:
        """Store a consent change and its receipt, `publish` it, and commit only if `publish` returned.

        A change not newer (by ``issued_at``) than the stored one raises `StaleConsentError`: a replayed
        grant cannot undo a later revocation. The row stays locked until the commit, so changes of one key
        reach the topic in the order they are stored.
        """
        key = (
            consents.c.subject == change.subject,
            consents.c.category == change.category,
            consents.c.grantee == change.grantee,
        )
        values = {
            "status": change.status,
            "purpose": change.purpose,
            "until": change.until,
            "issued_at": change.issued_at,
            "changed_at": now,
            "consent": dict(change.signed),
        }
        made = receipt(now)
        async with self.engine.begin() as conn:
            current = (
                await conn.execute(select(consents.c.issued_at).where(*key).with_for_update())
            ).scalar_one_or_none()
            if current is not None and current >= change.issued_at:
                raise StaleConsentError("a consent change at or after this one is stored already")
            if current is None:
                try:
                    await conn.execute(
                        insert(consents).values(
                            subject=change.subject,
                            category=change.category,
                            grantee=change.grantee,
                            receipt=made,
                            **values,
                        )
                    )
                except IntegrityError as exc:  # a concurrent first change of the same key won
                    raise StaleConsentError("a concurrent change of this consent was stored first") from exc
            else:
                await conn.execute(update(consents).where(*key).values(receipt=made, **values))
            await publish(now)
        return made

    async def consents_of(self, subject: str) -> list[Mapping[str, Any]]:
        """Every consent of `subject` (current state, with its latest receipt)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(consents)
                .where(consents.c.subject == subject)
                .order_by(consents.c.category, consents.c.grantee)
            )
            return list(rows.mappings())

    async def consent_allows(self, subject: str, category: str, grantee: str, now: datetime) -> bool:
        """True if `subject` currently grants `category` to `grantee`."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(consents.c.status, consents.c.until).where(
                        consents.c.subject == subject,
                        consents.c.category == category,
                        consents.c.grantee == grantee,
                    )
                )
            ).first()
        return row is not None and row.status == "granted" and (row.until is None or now < row.until)

    async def post_notice(
        self,
        notice_id: str,
        notice: Mapping[str, Any],
        *,
        group: tuple[str, str] | None,
        expires_at: datetime | None,
    ) -> bool:
        """Store a notice, to its ``recipient`` or to `group` (kind, value); True if new (the same signed notice
        again is not a second one). A group notice is one row, whoever and however many it reaches."""
        statement = (
            insert(notices)
            .values(
                notice_id=notice_id,
                recipient=notice.get("recipient"),
                group_kind=group[0] if group else None,
                group_value=group[1] if group else None,
                sender=notice["sender"],
                title=notice["title"],
                body=notice["body"],
                expires_at=expires_at,
                notice=dict(notice),
            )
            .on_conflict_do_nothing(index_elements=[notices.c.notice_id])
            .returning(notices.c.notice_id)
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(statement)).first() is not None

    async def notices_for(self, did: str, now: datetime, limit: int) -> list[Mapping[str, Any]]:
        """The newest unexpired notices `did` reads at `now`: those to them, and those to a group they belong to
        now (their custody; a credential type they hold unrevoked and unexpired), so a group is never copied
        per person and a revoked credential stops its holder's group notices at once."""
        held_types = select(credentials.c.vct).where(
            credentials.c.subject == did,
            credentials.c.revoked_at.is_(None),
            credentials.c.expires_at > now,
        )
        custody = select(identities.c.custody).where(identities.c.did == did).scalar_subquery()
        addressed = or_(
            notices.c.recipient == did,
            and_(notices.c.group_kind == "custody", notices.c.group_value == custody),
            and_(notices.c.group_kind == "credential", notices.c.group_value.in_(held_types)),
        )
        statement = (
            select(notices)
            .where(addressed, or_(notices.c.expires_at.is_(None), notices.c.expires_at > now))
            .order_by(notices.c.posted_at.desc(), notices.c.notice_id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(statement)).mappings())

    async def record_service(
        self, record_id: str, provider: str, subject: str, service: str, day: date
    ) -> bool:
        """Store a service record; True if new (the same signed record again is not counted twice)."""
        statement = (
            insert(service_records)
            .values(record_id=record_id, provider=provider, subject=subject, service=service, day=day)
            .on_conflict_do_nothing(index_elements=[service_records.c.record_id])
            .returning(service_records.c.record_id)
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(statement)).first() is not None

    async def service_counts(self, since: date, until: date) -> list[Mapping[str, Any]]:
        """Services given per service and day between two days (inclusive): counts only, no identities."""
        statement = (
            select(service_records.c.service, service_records.c.day, func.count().label("count"))
            .where(service_records.c.day >= since, service_records.c.day <= until)
            .group_by(service_records.c.service, service_records.c.day)
            .order_by(service_records.c.day, service_records.c.service)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(statement)).mappings())

    # --- transfers signed for custodial wallets ---------------------------------------------------------------

    async def custodial_transfer(
        self, did: str, request_id: str, sign: SignTransfer, *, floor: int
    ) -> tuple[Mapping[str, Any], bool]:
        """The transfer stored for `request_id` of `did`, or a new one signed with the holder's next nonce (above
        every nonce signed for them and at least `floor`), and whether it is new.

        The identity row is locked while the nonce is chosen, so concurrent requests of one holder (from any
        number of replicas) never sign two transfers with one nonce, nor two transfers for one request id.
        """
        async with self.engine.begin() as conn:
            await self._lock_identity(conn, did)
            row = await self._transfer_row(conn, did, request_id)
            if row is not None:
                return row, False
            nonce = await self._next_nonce(conn, did, floor)
            await conn.execute(
                insert(custodial_transfers).values(
                    did=did, request_id=request_id, nonce=nonce, transfer=sign(nonce)
                )
            )
            made = await self._transfer_row(conn, did, request_id)
        assert made is not None
        return made, True

    async def renonce_transfer(
        self, did: str, request_id: str, stale_nonce: int, sign: SignTransfer, *, floor: int
    ) -> Mapping[str, Any]:
        """Sign the unsettled transfer of `request_id` again with a fresh nonce, after the ledger refused its
        nonce as stale (so it can never settle); another caller's renewal, or a receipt, is kept as it is."""
        async with self.engine.begin() as conn:
            await self._lock_identity(conn, did)
            row = await self._transfer_row(conn, did, request_id)
            if row is None:
                raise LookupError(f"no transfer {request_id!r} of {did}")
            if row["receipt"] is not None or row["nonce"] != stale_nonce:
                return row
            nonce = await self._next_nonce(conn, did, floor)
            await conn.execute(
                update(custodial_transfers)
                .where(custodial_transfers.c.did == did, custodial_transfers.c.request_id == request_id)
                .values(nonce=nonce, transfer=sign(nonce))
            )
            made = await self._transfer_row(conn, did, request_id)
        assert made is not None
        return made

    async def record_receipt(
        self, did: str, request_id: str, receipt: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """Keep the ledger's receipt of the transfer of `request_id`, and return the one kept (the first)."""
        key = custodial_transfers.c.did == did, custodial_transfers.c.request_id == request_id
        async with self.engine.begin() as conn:
            await conn.execute(
                update(custodial_transfers)
                .where(*key, custodial_transfers.c.receipt.is_(None))
                .values(receipt=dict(receipt))
            )
            return await conn.scalar(select(custodial_transfers.c.receipt).where(*key))

    @staticmethod
    async def _lock_identity(conn: AsyncConnection, did: str) -> None:
        await conn.execute(select(identities.c.did).where(identities.c.did == did).with_for_update())

    @staticmethod
    async def _transfer_row(conn: AsyncConnection, did: str, request_id: str) -> Mapping[str, Any] | None:
        statement = select(custodial_transfers).where(
            custodial_transfers.c.did == did, custodial_transfers.c.request_id == request_id
        )
        return (await conn.execute(statement)).mappings().first()

    @staticmethod
    async def _next_nonce(conn: AsyncConnection, did: str, floor: int) -> int:
        last = await conn.scalar(
            select(func.max(custodial_transfers.c.nonce)).where(custodial_transfers.c.did == did)
        )
        return max((last or 0) + 1, floor)
