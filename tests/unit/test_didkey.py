import pytest

from services.common import didkey

# did:key test vector from the did:key method spec (Ed25519, "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp")
SPEC_DID = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"


def test_spec_vector_round_trips():
    key = didkey.decode(SPEC_DID)
    assert len(key) == 32
    assert didkey.encode(key) == SPEC_DID
    assert SPEC_DID.startswith("did:key:z6Mk")


def test_encode_known_key():
    # The all-zero key encodes deterministically and decodes back to itself.
    did = didkey.encode(bytes(32))
    assert did.startswith("did:key:z6Mk")
    assert didkey.decode(did) == bytes(32)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "did:web:example.com",
        "did:key:6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",  # no multibase prefix
        "did:key:z0OIl",  # characters outside base58
        "did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme",  # secp256k1, not Ed25519
        SPEC_DID[:-3],  # truncated
        None,
        42,
        [SPEC_DID],  # unhashable: decoding is memoised, which must not turn these into a TypeError
        {"did": SPEC_DID},
    ],
)
def test_rejects_what_is_not_an_ed25519_did_key(bad):
    with pytest.raises(didkey.DidKeyError):
        didkey.decode(bad)
    assert not didkey.is_did_key(bad)


def test_encode_rejects_wrong_length():
    with pytest.raises(didkey.DidKeyError):
        didkey.encode(bytes(31))
