"""Presentations verified per second (SD-JWT + key binding, EdDSA) against bare Ed25519 JWS verification.

A presentation costs two EdDSA JWS verifications (the issuer's JWT and the holder's key-binding JWT) plus
disclosure digests, the sd_hash and the status check, so its ideal is half the bare JWS rate.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS

from bench.primitives import rate
from services.common import events, sdjwt
from services.common.consents import CITY, ConsentBook, check_consent, check_record
from services.common.signing import Keypair, b64url_decode

TARGET_PER_S = 2000
STATUS_URI = "https://identity.example/v1/status-lists/resident"


def main() -> None:
    print("identity: presentations verified per second (one process, one thread)")
    issuer, holder = Keypair.generate(), Keypair.generate()
    now = int(time.time())
    claims = {
        "given_name": "Ada",
        "family_name": "Lovelace",
        "birthdate": "1990-05-17",
        "age_over_18": True,
        "age_over_21": True,
        "age_over_65": False,
        "resident_of": "Smart City",
    }
    credential = sdjwt.issue(
        issuer,
        holder.did,
        claims,
        vct="https://smartcity.example/credentials/resident/v1",
        iat=now,
        exp=now + 86400,
        status={"status_list": {"idx": 42, "uri": STATUS_URI}},
    )
    over_18 = sdjwt.present(credential, ["age_over_18"], holder, nonce="n", audience="bar", iat=now)
    three = sdjwt.present(
        credential, ["given_name", "family_name", "birthdate"], holder, nonce="n", audience="bar", iat=now
    )
    verifier = sdjwt.Verifier([issuer.did])
    revoked = {(STATUS_URI, 7)}

    def is_revoked(uri: str, idx: int) -> bool:
        return (uri, idx) in revoked

    issuer_jwt = sdjwt.split(credential)[0]
    issuer_key = JWK(**sdjwt.public_jwk(issuer.did))

    token = JWS()  # reused, as the verifier does

    def bare_jws() -> None:
        token.deserialize(issuer_jwt)
        token.verify(issuer_key, alg="EdDSA")

    header_and_payload, _, signature = issuer_jwt.rpartition(".")
    signed_bytes, raw_signature = header_and_payload.encode(), b64url_decode(signature)
    verify_key = issuer.signing_key.verify_key

    n = 4000
    rate(
        "bare Ed25519 verify of the same bytes (PyNaCl)",
        lambda: verify_key.verify(signed_bytes, raw_signature),
        n,
    )
    baseline = rate("baseline: bare Ed25519 JWS verify (jwcrypto)", bare_jws, n)
    one = rate(
        "presentation, 1 claim (age_over_18)",
        lambda: verifier.verify(over_18, nonce="n", audience="bar", now=now, is_revoked=is_revoked),
        n,
    )
    several = rate(
        "presentation, 3 claims",
        lambda: verifier.verify(three, nonce="n", audience="bar", now=now, is_revoked=is_revoked),
        n,
    )
    print(f"  {'ratio presentation (1 claim) / bare JWS':<48} {one / baseline:>12.2f}   (ideal 0.5)")
    print(f"  {'ratio presentation (3 claims) / bare JWS':<48} {several / baseline:>12.2f}")
    verdict = "meets" if min(one, several) >= TARGET_PER_S else "MISSES"
    print(f"  target {TARGET_PER_S:,}/s: {verdict}")
    _consents()


def _consents() -> None:
    """What a ConsentView costs: folding a record (schema + the subject's signature) and asking it."""
    print("identity: consent records (what every ConsentView folds at start-up, and asks per reading)")
    subjects = [Keypair.generate() for _ in range(200)]
    records = [
        check_consent(
            s.sign(
                {
                    "subject": s.did,
                    "category": "mobility",
                    "grantee": CITY,
                    "action": "grant",
                    "purpose": "rewards",
                    "issued_at": events.now_rfc3339(),
                }
            )
        ).record(datetime.now(UTC))
        for s in subjects
    ]
    book = ConsentBook()
    cursor = iter(range(10**9))
    fold = rate(
        "fold a record (schema + Ed25519 re-verification)",
        lambda: book.apply(check_record(records[next(cursor) % 200])),
        4000,
    )
    ask = rate(
        "allows(subject, category) on the folded book",
        lambda: book.allows(subjects[7].did, "mobility"),
        100000,
    )
    print(f"  {'ratio allows / fold':<48} {ask / fold:>12.0f}")
