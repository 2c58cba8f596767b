"""Keys and signed objects, the platform's way.

- Every key is Ed25519 (PyNaCl); a wallet, device or issuer is named by the did:key of its public key
  (`smartcity_sdk.didkey`).
- A signed object is a JSON object with a ``sig`` field: unpadded base64url of the Ed25519 signature over the
  RFC 8785 (JCS) bytes of the object without ``sig`` (`smartcity_sdk.jcs`). Which field names the signer
  depends on the object: ``from`` for a transfer, ``issuer`` for an issuer command, ``owner`` for a device
  registration, ``device_id`` for a reading, ``did`` or ``subject`` for identity's requests.
- A signature has exactly one text (`signature_bytes`): 86 characters, no padding, the spare bits of the last
  one zero. The platform refuses any other writing of the same 64 bytes rather than take it for a new object.
- A key file holds base64url (padding optional) of the key's 32-byte seed, as ``smartcity up`` writes the
  development keys under its data dir (``<data dir>/city/root.key``, ...).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from smartcity_sdk import didkey
from smartcity_sdk.jcs import CanonicalizationError, canonical_bytes

SIG_FIELD = "sig"
SEED_SIZE = 32
"""Bytes of an Ed25519 seed (the secret a key file holds)."""


class SignatureError(ValueError):
    """A signed object is malformed or its signature does not verify."""


def b64url_encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ValueError on bad input."""
    if not isinstance(text, str):
        raise ValueError("not a string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


def signature_bytes(sig: str, field: str = SIG_FIELD) -> bytes:
    """The 64 bytes of a signature's text; raises `SignatureError` unless the text is their canonical
    encoding: unpadded base64url, 86 characters, the unused low bits of the last one zero.

    One signature has exactly one text, so a re-encoded signature (padding added, the last character's
    spare bits set) is refused rather than taken for a new object.
    """
    try:
        signature = b64url_decode(sig)
    except ValueError as exc:
        raise SignatureError(f"{field!r} is not base64url") from exc
    if len(signature) != 64:
        raise SignatureError(f"{field!r} is not a 64-byte Ed25519 signature")
    if b64url_encode(signature) != sig:
        raise SignatureError(f"{field!r} is not the canonical unpadded base64url text of its 64 bytes")
    return signature


def parse_seed(text: str, name: str = "the key") -> bytes:
    """The 32 bytes of a seed written in base64url (padding optional, surrounding white space ignored), as a
    key file holds it; raises ValueError naming `name`."""
    try:
        seed = b64url_decode(text.strip())
    except ValueError as exc:
        raise ValueError(f"{name} is not base64url") from exc
    if len(seed) != SEED_SIZE:
        raise ValueError(f"{name} must be {SEED_SIZE} bytes, got {len(seed)}")
    return seed


@dataclass(frozen=True)
class Keypair:
    """An Ed25519 key with its did:key."""

    signing_key: SigningKey
    canonicalise: ClassVar[Callable[[Any], bytes]] = staticmethod(canonical_bytes)
    """The JCS bytes `sign` signs: the reference implementation here; the services' subclass uses their
    faster encoder, which gives the very same bytes."""

    @classmethod
    def generate(cls) -> Self:
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Self:
        return cls(SigningKey(seed))

    @classmethod
    def from_file(cls, path: Path | str) -> Self:
        """The key whose seed the file at `path` holds (see the module's note on key files)."""
        return cls.from_seed(parse_seed(Path(path).read_text(), str(path)))

    @property
    def did(self) -> str:
        return didkey.encode(bytes(self.signing_key.verify_key))

    @property
    def seed(self) -> bytes:
        return bytes(self.signing_key)

    def sign_bytes(self, data: bytes) -> bytes:
        return self.signing_key.sign(data).signature

    def sign(
        self, obj: Mapping[str, Any], field: str = SIG_FIELD, exclude: Collection[str] = ()
    ) -> dict[str, Any]:
        """Return a copy of `obj` with `field` (``sig``) set to this key's signature over the JCS bytes of
        `obj` without `field` and the `exclude`d fields (see `verify`)."""
        body = {k: v for k, v in obj.items() if k != field}
        signed = {k: v for k, v in body.items() if k not in exclude}
        return {**body, field: b64url_encode(self.sign_bytes(self.canonicalise(signed)))}


def verify_key(did: str) -> VerifyKey:
    """The verify key of an Ed25519 did:key; raises `SignatureError`. (Decoding the did is memoised in
    `didkey`; building the key costs ~0.2 µs.)"""
    try:
        return VerifyKey(didkey.decode(did))
    except didkey.DidKeyError as exc:
        raise SignatureError(f"signer is not a valid did:key: {exc}") from exc


def verify_bytes(did: str, data: bytes, signature: bytes) -> None:
    """Verify a detached signature by the key of `did`; raises `SignatureError`."""
    key = verify_key(did)
    try:
        key.verify(data, signature)
    except (BadSignatureError, ValueError) as exc:
        raise SignatureError("signature does not verify") from exc


def signed_parts(
    obj: Mapping[str, Any],
    signer_field: str,
    field: str = SIG_FIELD,
    exclude: Collection[str] = (),
    canonicalise: Callable[[Any], bytes] = canonical_bytes,
) -> tuple[str, bytes, bytes]:
    """What checking a signed object takes: (the signer's did, the bytes signed, the signature), that is
    ``obj[signer_field]``, the JCS bytes of `obj` without `field` and the `exclude`d fields, and the bytes of
    ``obj[field]`` in their one canonical text. Raises `SignatureError` if any is missing or malformed."""
    if not isinstance(obj, Mapping):
        raise SignatureError("a signed object must be a JSON object")
    sig = obj.get(field)
    if not isinstance(sig, str):
        raise SignatureError(f"missing {field!r}")
    signature = signature_bytes(sig, field)
    signer = obj.get(signer_field)
    if not isinstance(signer, str):
        raise SignatureError(f"missing signer field {signer_field!r}")
    try:
        body = canonicalise({k: v for k, v in obj.items() if k != field and k not in exclude})
    except CanonicalizationError as exc:
        raise SignatureError(str(exc)) from exc
    return signer, body, signature


def verify(
    obj: Mapping[str, Any], signer_field: str, field: str = SIG_FIELD, exclude: Collection[str] = ()
) -> None:
    """Verify that ``obj[field]`` (``sig``) is the signature, by the did:key in ``obj[signer_field]``, of the
    JCS bytes of `obj` without `field` and the `exclude`d fields; raises `SignatureError`.

    `field` and `exclude` are for objects signed by two keys in turn (a device registration: the device signs
    first, into ``device_sig``, then its owner signs the whole, into ``sig``)."""
    verify_bytes(*signed_parts(obj, signer_field, field, exclude))
