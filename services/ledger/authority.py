"""Authority on the chain: the city's root key, and the roles it grants and revokes. The rules, as pure
functions (no I/O).

The chain is the source of truth for who may sign what. Its first authority record is the *bootstrap*,
written once by the ledger itself (its block signature is what authorises it): it names the city's root key
and the roles seeded from settings. After it, only commands signed by the root key in force change
authority, each a record of the chain::

    {"command": "grant-role" | "revoke-role", "root": did:key, "nonce": n, "role": "rewards-oracle",
     "key": did:key, "sig": ...}
    {"command": "rotate-root", "root": did:key, "nonce": n, "new_root": did:key, "sig": ...}

Replaying the chain's authority records in leaf order answers "did this key hold this role when this record
was sealed?" for every record (`Authority.apply`), which is what the ledger checks before it settles and what
the verifier checks again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from services.common import didkey, signing
from services.common.roles import Role
from services.ledger.transactions import RejectedError, Transaction, build_transaction, derive_tx_id

AUTHORITY = "authority"
BOOTSTRAP = "bootstrap"
GRANT_ROLE = "grant-role"
REVOKE_ROLE = "revoke-role"
ROTATE_ROOT = "rotate-root"
COMMANDS = (GRANT_ROLE, REVOKE_ROLE, ROTATE_ROOT)
BOOTSTRAP_TX_ID = derive_tx_id(AUTHORITY, BOOTSTRAP)


@dataclass(frozen=True)
class Authority:
    """The root key in force and every role's holders, as of some point of the chain."""

    root: str | None = None
    holders: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def holds(self, key: str, role: Role | str) -> bool:
        return key in self.holders.get(str(role), frozenset())

    def with_role(self, role: str, key: str, held: bool) -> Authority:
        keys = self.holders.get(role, frozenset())
        holders = {**self.holders, role: (keys | {key}) if held else (keys - {key})}
        return replace(self, holders={r: k for r, k in holders.items() if k})

    def as_json(self) -> dict[str, Any]:
        return {"root": self.root, "roles": {r: sorted(k) for r, k in sorted(self.holders.items())}}

    def apply(self, record: Mapping[str, Any]) -> Authority:
        """The authority after a chain record (records of other types change nothing).

        Raises `RejectedError` for an authority record the rules refuse (a bootstrap after the first, a
        command not signed by the root in force).
        """
        if record.get("type") != AUTHORITY:
            return self
        body = record.get("authority")
        if not isinstance(body, Mapping):
            raise RejectedError("malformed", "an authority record holds an 'authority' object")
        if body.get("command") == BOOTSTRAP:
            if self.root is not None:
                raise RejectedError("already-bootstrapped", "the chain has a root key already")
            return bootstrapped(body)
        check_command(body, self)
        return effect(body, self)


def check_key(value: Any, what: str) -> str:
    if not isinstance(value, str) or not didkey.is_did_key(value):
        raise RejectedError("bad-key", f"{what} must be an Ed25519 did:key, got {value!r}")
    return value


def check_role(value: Any) -> str:
    try:
        return str(Role(value))
    except ValueError:
        raise RejectedError("unknown-role", f"{value!r} is not a role ({', '.join(Role)})") from None


def bootstrap_body(root: str, seeds: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """The body of the bootstrap record: the root key and the seeded roles (sorted, so it is canonical)."""
    check_key(root, "the root key")
    roles = {check_role(role): sorted({check_key(k, role) for k in keys}) for role, keys in seeds.items()}
    return {"command": BOOTSTRAP, "root": root, "roles": {r: k for r, k in sorted(roles.items()) if k}}


def bootstrapped(body: Mapping[str, Any]) -> Authority:
    roles = body.get("roles")
    if not isinstance(roles, Mapping):
        raise RejectedError("malformed", "a bootstrap names its seeded 'roles'")
    authority = Authority(root=check_key(body.get("root"), "the root key"))
    for role, keys in roles.items():
        if not isinstance(keys, list):
            raise RejectedError("malformed", f"roles/{role} must be a list of did:keys")
        for key in keys:
            authority = authority.with_role(check_role(role), check_key(key, role), True)
    return authority


def bootstrap_transaction(root: str, seeds: Mapping[str, Iterable[str]], timestamp: str) -> Transaction:
    """The chain's first authority record (no postings), authorised by the ledger's own block signature."""
    return build_transaction(AUTHORITY, BOOTSTRAP_TX_ID, [], timestamp, authority=bootstrap_body(root, seeds))


def command_tx_id(root: str, nonce: int) -> str:
    return derive_tx_id(AUTHORITY, f"{root}/{nonce}")


def check_command(command: Mapping[str, Any], authority: Authority) -> None:
    """Check a root command's shape and signature against the authority in force; raises `RejectedError`."""
    kind = command.get("command")
    if kind not in COMMANDS:
        raise RejectedError("malformed", f"command must be one of {', '.join(COMMANDS)}")
    if authority.root is None:
        raise RejectedError("no-root", "the chain has no root key yet")
    if command.get("root") != authority.root:
        raise RejectedError("not-the-root", f"{command.get('root')} is not the root key in force")
    nonce = command.get("nonce")
    if type(nonce) is not int or nonce < 1:
        raise RejectedError("malformed", "nonce must be a positive integer")
    if kind == ROTATE_ROOT:
        check_key(command.get("new_root"), "new_root")
    else:
        check_role(command.get("role"))
        check_key(command.get("key"), "key")
    try:
        signing.verify(command, "root")
    except signing.SignatureError as exc:
        raise RejectedError("bad-signature", f"not signed by the root key: {exc}") from exc


def effect(command: Mapping[str, Any], authority: Authority) -> Authority:
    """The authority after a checked root command."""
    kind = command["command"]
    if kind == ROTATE_ROOT:
        return replace(authority, root=command["new_root"])
    return authority.with_role(command["role"], command["key"], kind == GRANT_ROLE)


@dataclass(frozen=True)
class PlannedAuthority:
    """A root command to settle, and the authority it leaves in force."""

    tx: Transaction
    nonce: int
    after: Authority


def plan_command(
    command: Mapping[str, Any], authority: Authority, last_nonce: int, timestamp: str
) -> PlannedAuthority:
    """Judge a root command against the authority in force and the root's last nonce; raises
    `RejectedError` naming the rule it breaks."""
    check_command(command, authority)
    nonce = command["nonce"]
    if nonce <= last_nonce:
        raise RejectedError("stale-nonce", f"nonce {nonce} is not above the last accepted nonce {last_nonce}")
    if command["command"] == REVOKE_ROLE and not authority.holds(command["key"], command["role"]):
        raise RejectedError("not-held", f"{command['key']} does not hold the {command['role']} role")
    tx = build_transaction(
        AUTHORITY, command_tx_id(command["root"], nonce), [], timestamp, authority=dict(command)
    )
    return PlannedAuthority(tx, nonce, effect(command, authority))
