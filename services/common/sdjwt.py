"""Selective-disclosure credentials: SD-JWT (RFC 9901) in the SD-JWT VC shape, signed with EdDSA (Ed25519).

Pure (no I/O). JWS signing and verification are jwcrypto's; this module builds disclosures, the key-binding
JWT and the checks a verifier must make, in the order RFC 9901 section 7 gives them:

- ``issue``: the issuer-signed JWT (``typ: dc+sd-jwt``; ``iss``, ``vct``, ``iat``, ``exp``, ``cnf.jwk`` of the
  holder, ``status`` pointing into the issuer's status list) with every claim selectively disclosable;
- ``present``: the holder keeps only the disclosures of the claims asked for and appends a key-binding JWT
  (``typ: kb+jwt``; ``iat``, ``aud``, ``nonce``, ``sd_hash`` over the presented SD-JWT);
- `Verifier.verify`: issuer signature, validity period, disclosures (each must be referenced by a digest,
  none twice), key binding (signature by the ``cnf`` key, nonce, audience, freshness, ``sd_hash``) and the
  status list; it returns exactly the disclosed claims, or raises `PresentationError` naming the reason.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jwcrypto.common import JWException
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from services.common import didkey
from services.common.signing import Keypair, b64url_decode, b64url_encode
from smartcity_sdk.disclosures import digest, make_disclosure

SD_JWT_TYP = "dc+sd-jwt"
KB_JWT_TYP = "kb+jwt"
ALG = "EdDSA"
SD_ALG = "sha-256"
SEPARATOR = "~"

# Why a presentation was refused; the API answers each as a 4xx problem of that kind.
MALFORMED = "malformed"
UNTRUSTED_ISSUER = "untrusted-issuer"
SIGNATURE = "signature"
EXPIRED = "expired"
NOT_YET_VALID = "not-yet-valid"
REVOKED = "revoked"
TAMPERED_DISCLOSURE = "tampered-disclosure"
KEY_BINDING = "key-binding"
WRONG_NONCE = "wrong-nonce"
WRONG_AUDIENCE = "wrong-audience"
STALE = "stale-key-binding"
SD_HASH = "sd-hash"


class PresentationError(ValueError):
    """A presentation that does not verify; `reason` is one of this module's reason constants."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def public_jwk(did: str) -> dict[str, str]:
    """The public JWK (OKP, Ed25519) of a did:key."""
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(didkey.decode(did))}


def _private_jwk(keypair: Keypair) -> JWK:
    return JWK(**public_jwk(keypair.did), d=b64url_encode(keypair.seed))


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_jwt(keypair: Keypair, header: Mapping[str, Any], payload: Mapping[str, Any]) -> str:
    """A compact JWS of `payload` signed with EdDSA by `keypair`, with `header` as its protected header."""
    token = JWS(_json(payload))
    token.add_signature(_private_jwk(keypair), alg=ALG, protected=_json({**header, "alg": ALG}).decode())
    return token.serialize(compact=True)


def _decode_disclosure(disclosure: str) -> tuple[str, str, Any]:
    try:
        decoded = json.loads(b64url_decode(disclosure))
    except ValueError as exc:
        raise PresentationError(TAMPERED_DISCLOSURE, "a disclosure is not base64url JSON") from exc
    if not (isinstance(decoded, list) and len(decoded) == 3 and all(isinstance(x, str) for x in decoded[:2])):
        raise PresentationError(TAMPERED_DISCLOSURE, "a disclosure is not [salt, name, value]")
    return decoded[0], decoded[1], decoded[2]


def issue(
    issuer: Keypair,
    holder_did: str,
    claims: Mapping[str, Any],
    *,
    vct: str,
    iat: int,
    exp: int,
    status: Mapping[str, Any] | None = None,
) -> str:
    """An SD-JWT (``<issuer-signed JWT>~<disclosure>~...~``) with every claim in `claims` disclosable."""
    disclosures = [make_disclosure(name, value) for name, value in claims.items()]
    payload: dict[str, Any] = {
        "iss": issuer.did,
        "iat": iat,
        "exp": exp,
        "vct": vct,
        "cnf": {"jwk": public_jwk(holder_did)},
        # Sorted, so the order of the digests says nothing about the order of the claims.
        "_sd": sorted(digest(d) for d in disclosures),
        "_sd_alg": SD_ALG,
    }
    if status is not None:
        payload["status"] = dict(status)
    header = {"typ": SD_JWT_TYP, "kid": f"{issuer.did}#{didkey.multibase(didkey.decode(issuer.did))}"}
    return SEPARATOR.join([sign_jwt(issuer, header, payload), *disclosures, ""])


def split(text: str) -> tuple[str, list[str], str]:
    """The issuer-signed JWT, the disclosures and the key-binding JWT ("" if none) of an SD-JWT."""
    if not isinstance(text, str) or SEPARATOR not in text:
        raise PresentationError(MALFORMED, "not an SD-JWT (<jwt>~<disclosures>~<kb-jwt>)")
    jwt, *disclosures, kb_jwt = text.split(SEPARATOR)
    if not jwt or any(not d for d in disclosures):
        raise PresentationError(MALFORMED, "an SD-JWT has a JWT first and no empty disclosures")
    return jwt, disclosures, kb_jwt


def claim_names(sd_jwt: str) -> list[str]:
    """The names of the claims an SD-JWT's disclosures hold."""
    return [_decode_disclosure(d)[1] for d in split(sd_jwt)[1]]


def present(
    sd_jwt: str, disclose: Collection[str], holder: Keypair, *, nonce: str, audience: str, iat: int
) -> str:
    """A presentation of `sd_jwt` disclosing only the claims named in `disclose`, bound to `holder`'s key.

    Raises ValueError if `disclose` names a claim the credential does not hold.
    """
    jwt, disclosures, _ = split(sd_jwt)
    by_name = {_decode_disclosure(d)[1]: d for d in disclosures}
    unknown = sorted(set(disclose) - set(by_name))
    if unknown:
        raise ValueError(f"the credential holds no claim {', '.join(unknown)}")
    presented = SEPARATOR.join([jwt, *(by_name[name] for name in disclose), ""])
    kb_payload = {"iat": iat, "aud": audience, "nonce": nonce, "sd_hash": digest(presented)}
    return presented + sign_jwt(holder, {"typ": KB_JWT_TYP}, kb_payload)


@dataclass(frozen=True)
class Verified:
    """What a verified presentation says: the issuer, the credential type and exactly the disclosed claims."""

    issuer: str
    vct: str
    issued_at: int
    expires_at: int
    disclosed: dict[str, Any]
    status_uri: str | None
    status_index: int | None


StatusCheck = Callable[[str, int], bool]
"""(status list uri, index) -> True if the credential at that index is revoked."""


class Verifier:
    """Verifies presentations of credentials issued by any of `trusted_issuers` (did:keys)."""

    def __init__(
        self, trusted_issuers: Iterable[str], *, kb_max_age_s: int = 300, leeway_s: int = 60
    ) -> None:
        # Built once: JWK objects are the costly part of a jwcrypto verification after the signature itself.
        self._issuer_keys = {did: JWK(**public_jwk(did)) for did in trusted_issuers}
        # A JWS object per thread, reused: `deserialize` resets it, and building one deep-copies jwcrypto's
        # header registry, which costs as much as the signature check itself.
        self._local = threading.local()
        self.kb_max_age_s = kb_max_age_s
        self.leeway_s = leeway_s

    def verify(
        self, presentation: str, *, nonce: str, audience: str, now: int, is_revoked: StatusCheck | None
    ) -> Verified:
        """Verify a presentation with key binding; raises `PresentationError` naming what failed.

        With `is_revoked` None the caller checks the returned status reference itself (e.g. asynchronously).
        """
        jwt, disclosures, kb_jwt = split(presentation)
        if not kb_jwt:
            raise PresentationError(KEY_BINDING, "the presentation has no key-binding JWT")
        payload, disclosed = self._credential(jwt, disclosures, now)
        self._check_key_binding(payload, jwt, disclosures, kb_jwt, nonce=nonce, audience=audience, now=now)
        return _verified(payload, disclosed, is_revoked)

    def verify_unbound(
        self, sd_jwt: str, *, now: int, is_revoked: StatusCheck | None
    ) -> tuple[Verified, str]:
        """Verify an SD-JWT shown without key binding (a printed credential's QR code): the issuer's signature,
        validity and disclosures, but not who shows it. Returns what it says and the did of its holder key
        (``cnf``), so the caller can check whose it is; raises `PresentationError`."""
        jwt, disclosures, _kb_jwt = split(sd_jwt)
        payload, disclosed = self._credential(jwt, disclosures, now)
        return _verified(payload, disclosed, is_revoked), didkey.encode(_holder_public_key(payload))

    def _credential(
        self, jwt: str, disclosures: list[str], now: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The verified payload of an issuer-signed SD-JWT and the claims its disclosures disclose."""
        header, payload = _verified_jwt(self._jws(), jwt, self._issuer_key, SIGNATURE)
        if header.get("typ") != SD_JWT_TYP:
            raise PresentationError(MALFORMED, f"the credential's typ is not {SD_JWT_TYP}")
        if payload.get("_sd_alg", SD_ALG) != SD_ALG:
            raise PresentationError(MALFORMED, f"only _sd_alg {SD_ALG} is supported")
        iat, exp = payload.get("iat"), payload.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            raise PresentationError(MALFORMED, "the credential has no integer iat and exp")
        if now >= exp + self.leeway_s:
            raise PresentationError(EXPIRED, "the credential has expired")
        if now + self.leeway_s < iat:
            raise PresentationError(NOT_YET_VALID, "the credential is not valid yet")
        return payload, _disclosed_claims(payload, disclosures)

    def _jws(self) -> JWS:
        jws = getattr(self._local, "jws", None)
        if jws is None:
            jws = self._local.jws = JWS()
        return jws

    def _issuer_key(self, payload: Mapping[str, Any]) -> JWK:
        issuer = payload.get("iss")
        key = self._issuer_keys.get(issuer) if isinstance(issuer, str) else None
        if key is None:
            raise PresentationError(UNTRUSTED_ISSUER, f"the issuer {issuer!r} is not trusted")
        return key

    def _check_key_binding(
        self,
        payload: Mapping[str, Any],
        jwt: str,
        disclosures: list[str],
        kb_jwt: str,
        *,
        nonce: str,
        audience: str,
        now: int,
    ) -> None:
        holder = _holder_jwk(payload)
        try:
            holder_key = _holder_key(holder["x"])
        except (JWException, KeyError, TypeError, ValueError) as exc:
            raise PresentationError(MALFORMED, "the credential's cnf.jwk is not a key") from exc
        header, kb = _verified_jwt(self._jws(), kb_jwt, lambda _payload: holder_key, KEY_BINDING)
        if header.get("typ") != KB_JWT_TYP:
            raise PresentationError(KEY_BINDING, f"the key-binding JWT's typ is not {KB_JWT_TYP}")
        if kb.get("nonce") != nonce:
            raise PresentationError(WRONG_NONCE, "the key-binding JWT is for another nonce")
        if kb.get("aud") != audience:
            raise PresentationError(WRONG_AUDIENCE, "the key-binding JWT is for another audience")
        kb_iat = kb.get("iat")
        if not isinstance(kb_iat, int) or not (now - self.kb_max_age_s <= kb_iat <= now + self.leeway_s):
            raise PresentationError(STALE, "the key-binding JWT was not made just now")
        presented = SEPARATOR.join([jwt, *disclosures, ""])
        if kb.get("sd_hash") != digest(presented):
            raise PresentationError(SD_HASH, "sd_hash does not match the presented SD-JWT")


def _verified(
    payload: Mapping[str, Any], disclosed: dict[str, Any], is_revoked: StatusCheck | None
) -> Verified:
    status_uri, status_index = _check_status(payload, is_revoked)
    return Verified(
        issuer=payload["iss"],
        vct=str(payload.get("vct", "")),
        issued_at=payload["iat"],
        expires_at=payload["exp"],
        disclosed=disclosed,
        status_uri=status_uri,
        status_index=status_index,
    )


def _holder_jwk(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    cnf = payload.get("cnf")
    holder = cnf.get("jwk") if isinstance(cnf, Mapping) else None
    if not isinstance(holder, Mapping) or holder.get("kty") != "OKP" or holder.get("crv") != "Ed25519":
        raise PresentationError(MALFORMED, "the credential has no Ed25519 cnf.jwk")
    return holder


def _holder_public_key(payload: Mapping[str, Any]) -> bytes:
    try:
        key = b64url_decode(_holder_jwk(payload)["x"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PresentationError(MALFORMED, "the credential's cnf.jwk is not a key") from exc
    if len(key) != 32:
        raise PresentationError(MALFORMED, "the credential's cnf.jwk is not an Ed25519 key")
    return key


@lru_cache(maxsize=4096)
def _holder_key(x: str) -> JWK:
    """The JWK of a holder's public key (cached: holders present again and again)."""
    return JWK(kty="OKP", crv="Ed25519", x=x)


def _verified_jwt(
    jws: JWS, token: str, key_for: Callable[[Mapping[str, Any]], JWK], reason: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS whose EdDSA signature verifies by `key_for(unverified payload)`,
    using (and resetting) the JWS object `jws`."""
    parts = token.split(".")
    if len(parts) != 3:
        raise PresentationError(MALFORMED, "a JWT has three parts")
    try:
        unverified = json.loads(b64url_decode(parts[1]))
    except ValueError as exc:
        raise PresentationError(MALFORMED, "a JWT payload is not base64url JSON") from exc
    if not isinstance(unverified, dict):
        raise PresentationError(MALFORMED, "a JWT payload is not a JSON object")
    key = key_for(unverified)
    try:
        jws.deserialize(token)
        jws.verify(key, alg=ALG)
    except JWException as exc:
        raise PresentationError(reason, "the signature does not verify") from exc
    header = jws.jose_header
    return (header if isinstance(header, dict) else {}), json.loads(jws.payload)


def _disclosed_claims(payload: Mapping[str, Any], disclosures: list[str]) -> dict[str, Any]:
    """The claims of the disclosures, each of which the signed ``_sd`` must reference (RFC 9901 7.1)."""
    digests = payload.get("_sd", [])
    if not isinstance(digests, list):
        raise PresentationError(MALFORMED, "_sd is not an array")
    signed = set(digests)
    disclosed: dict[str, Any] = {}
    seen: set[str] = set()
    for disclosure in disclosures:
        d = digest(disclosure)
        if d not in signed:
            raise PresentationError(TAMPERED_DISCLOSURE, "a disclosure is not referenced by the credential")
        if d in seen:
            raise PresentationError(TAMPERED_DISCLOSURE, "a disclosure is presented twice")
        seen.add(d)
        _salt, name, value = _decode_disclosure(disclosure)
        if name in disclosed or name in payload or name in ("_sd", "..."):
            raise PresentationError(TAMPERED_DISCLOSURE, f"the claim {name!r} is disclosed twice")
        disclosed[name] = value
    return disclosed


def _check_status(
    payload: Mapping[str, Any], is_revoked: StatusCheck | None
) -> tuple[str | None, int | None]:
    status = payload.get("status")
    if status is None:
        return None, None
    ref = status.get("status_list") if isinstance(status, Mapping) else None
    if not (isinstance(ref, Mapping) and isinstance(ref.get("idx"), int) and isinstance(ref.get("uri"), str)):
        raise PresentationError(MALFORMED, "status.status_list needs an integer idx and a uri")
    if is_revoked is not None and is_revoked(ref["uri"], ref["idx"]):
        raise PresentationError(REVOKED, "the issuer has revoked the credential")
    return ref["uri"], ref["idx"]
