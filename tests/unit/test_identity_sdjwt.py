"""SD-JWT issuance, presentation and verification (pure), with every rejection reason."""

from __future__ import annotations

import json

import pytest

from services.common import sdjwt
from services.common.sdjwt import PresentationError, Verifier
from services.common.signing import Keypair, b64url_decode, b64url_encode
from services.identity import statuslist

NOW = 1_795_000_000
URI = "https://identity.example/v1/status-lists/resident"
CLAIMS = {"given_name": "Ada", "birthdate": "1990-05-17", "age_over_18": True, "age_over_65": False}


def never_revoked(_uri: str, _idx: int) -> bool:
    return False


@pytest.fixture
def parties():
    issuer, holder = Keypair.generate(), Keypair.generate()
    credential = sdjwt.issue(
        issuer,
        holder.did,
        CLAIMS,
        vct="urn:test:resident",
        iat=NOW - 10,
        exp=NOW + 3600,
        status={"status_list": {"idx": 7, "uri": URI}},
    )
    return issuer, holder, credential


def _present(credential: str, holder: Keypair, disclose, **overrides) -> str:
    args = {"nonce": "n-1", "audience": "https://bar.example", "iat": NOW, **overrides}
    return sdjwt.present(credential, disclose, holder, **args)


def _verify(issuer: Keypair, presentation: str, **overrides) -> sdjwt.Verified:
    args = {"nonce": "n-1", "audience": "https://bar.example", "now": NOW, "is_revoked": never_revoked}
    return Verifier([issuer.did]).verify(presentation, **{**args, **overrides})


def _reason(issuer: Keypair, presentation: str, **overrides) -> str:
    with pytest.raises(PresentationError) as caught:
        _verify(issuer, presentation, **overrides)
    return caught.value.reason


@pytest.mark.parametrize("disclose", [["birthdate"], ["age_over_18"], [], ["given_name", "age_over_65"]])
def test_presentation_discloses_exactly_the_chosen_claims(parties, disclose):
    issuer, holder, credential = parties
    verified = _verify(issuer, _present(credential, holder, disclose))
    assert verified.disclosed == {name: CLAIMS[name] for name in disclose}
    assert (verified.issuer, verified.vct, verified.status_index) == (issuer.did, "urn:test:resident", 7)


def test_credential_is_sd_jwt_vc_shaped(parties):
    _issuer, holder, credential = parties
    jwt, disclosures, kb = sdjwt.split(credential)
    header = json.loads(b64url_decode(jwt.split(".")[0]))
    payload = json.loads(b64url_decode(jwt.split(".")[1]))
    assert header["alg"] == "EdDSA" and header["typ"] == "dc+sd-jwt"
    assert payload["cnf"]["jwk"] == sdjwt.public_jwk(holder.did)
    assert {"iss", "iat", "exp", "vct", "_sd", "_sd_alg"} <= set(payload)
    assert not set(CLAIMS) & set(payload)  # nothing in the clear
    assert kb == "" and len(disclosures) == len(CLAIMS)
    assert sdjwt.claim_names(credential) == list(CLAIMS)


def test_rejections_name_what_failed(parties):
    issuer, holder, credential = parties
    good = _present(credential, holder, ["birthdate"])
    assert _reason(issuer, good, nonce="other") == sdjwt.WRONG_NONCE
    assert _reason(issuer, good, audience="https://evil.example") == sdjwt.WRONG_AUDIENCE
    assert _reason(issuer, good, now=NOW + 7200) == sdjwt.EXPIRED
    assert _reason(issuer, good, is_revoked=lambda uri, idx: (uri, idx) == (URI, 7)) == sdjwt.REVOKED
    assert _reason(Keypair.generate(), good) == sdjwt.UNTRUSTED_ISSUER
    assert _reason(issuer, _present(credential, holder, ["birthdate"], iat=NOW - 3600)) == sdjwt.STALE
    # The key-binding JWT signed by someone else than the cnf key.
    assert _reason(issuer, _present(credential, Keypair.generate(), ["birthdate"])) == sdjwt.KEY_BINDING
    assert _reason(issuer, credential) == sdjwt.KEY_BINDING  # no key binding at all


def test_tampering_is_detected(parties):
    issuer, holder, credential = parties
    jwt, disclosures, kb = sdjwt.split(_present(credential, holder, ["age_over_18"]))
    # A disclosure changed to claim another value: its digest is no longer in _sd.
    salt, name, _ = json.loads(b64url_decode(disclosures[0]))
    forged = b64url_encode(json.dumps([salt, name, False]).encode())
    assert _reason(issuer, "~".join([jwt, forged, kb])) == sdjwt.TAMPERED_DISCLOSURE
    # A disclosure added after the holder bound the presentation: sd_hash no longer matches.
    extra = sdjwt.split(credential)[1][0]
    assert _reason(issuer, "~".join([jwt, *disclosures, extra, kb])) == sdjwt.SD_HASH
    # The issuer's payload changed: its signature fails.
    header, payload, signature = jwt.split(".")
    claims = json.loads(b64url_decode(payload))
    altered = ".".join(
        [header, b64url_encode(json.dumps({**claims, "exp": NOW + 10**6}).encode()), signature]
    )
    assert _reason(issuer, "~".join([altered, *disclosures, kb])) == sdjwt.SIGNATURE
    assert _reason(issuer, "not an sd-jwt") == sdjwt.MALFORMED


def test_present_refuses_unknown_claims(parties):
    _issuer, holder, credential = parties
    with pytest.raises(ValueError, match="address"):
        _present(credential, holder, ["address"])


def test_status_list_bits():
    status_list = statuslist.encode([0, 9, 17], size=64)
    assert [i for i in range(70) if statuslist.is_set(status_list, i)] == [0, 9, 17]
    assert status_list["bits"] == 1
