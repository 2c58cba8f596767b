import hashlib

from services.common import ids


def test_reading_id_is_sha256_of_device_slash_seq():
    # A fixed vector, so the id cannot drift silently: ingest, rewards and the ledger all rely on it.
    assert ids.reading_id("did:key:z6MkX", 1) == hashlib.sha256(b"did:key:z6MkX/1").hexdigest()
    assert ids.reading_id("did:key:z6MkX", 1) != ids.reading_id("did:key:z6MkX", 2)
    assert ids.reading_id("did:key:z6MkX", 1) != ids.reading_id("did:key:z6MkY", 1)


def test_reward_id_is_sha256_of_reading_slash_rule():
    rid = ids.reading_id("did:key:z6MkX", 1)
    assert ids.reward_id(rid, "flat") == hashlib.sha256(f"{rid}/flat".encode()).hexdigest()
    assert ids.reward_id(rid, "flat") != ids.reward_id(rid, "bonus")
