"""The ledger's tables.

- ``transactions``: every settled transaction, in settlement order (``seq``), immutable. ``record`` holds the
  exact JCS bytes of the transaction record (the Merkle leaf), so proofs verify byte for byte.
- ``postings`` and ``balances``: the double-entry effects; ``balances`` is what the postings sum to, and no
  non-issuer balance may go negative (a CHECK, behind the settlement's own funds check).
- ``pending``: settled transactions not yet sealed into a block (a queue the sealer drains).
- ``leaves``: the sealed order: leaf index -> transaction, and the block that sealed it.
- ``tree_nodes``: every complete aligned Merkle node (level 0 = leaf hashes), so proofs read O(log n) rows.
- ``blocks``: the signed headers (exact JCS bytes), and whether their events were published.
- ``nonces``: the last accepted nonce of each transfer sender and issuer key (replay protection).
- ``frozen``: accounts an issuer command froze. ``grants``: AID grants and what is left of each.
- ``merchants``: the latest ``city.merchants.v1`` value per merchant wallet (the fold of the compacted topic).
- ``policies``: the reward policies on the chain, by hash (the document, parsed by the settlement).
- ``reward_caps``: micro-CITY settled per device (pseudonym) and hour, and per wallet and person and day (the reading's own time):
  the counters the policies' caps are checked against.
- ``authority`` and ``roles``: the root key and the role holders in force, the fold of the chain's authority
  records (`services.ledger.authority`), written in the transaction that settles each one.
- ``disclosures``: each settled reward's evidence, off the chain (served to its wallet and to auditors).
- ``memos``: the disclosures of transfers' and issuer commands' memo digests, off the chain (to parties, auditors).
"""

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    false,
    func,
)

metadata = MetaData()

transactions = Table(
    "transactions",
    metadata,
    Column("seq", BigInteger, Identity(always=True), primary_key=True),
    Column("tx_id", String(64), nullable=False, unique=True),
    Column("type", String(32), nullable=False),
    Column("record", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    Column("settled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

postings = Table(
    "postings",
    metadata,
    Column("seq", BigInteger, primary_key=True),
    Column("account", String(128), primary_key=True),
    Column("currency", String(16), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Index("ix_postings_account_seq", "account", "seq"),
)

balances = Table(
    "balances",
    metadata,
    Column("account", String(128), primary_key=True),
    Column("currency", String(16), primary_key=True),
    Column("balance", BigInteger, nullable=False),
    Column("issuer", Boolean, nullable=False, server_default=false()),
    CheckConstraint("issuer OR balance >= 0", name="ck_balances_non_negative"),
    Index("ix_balances_currency_balance", "currency", "balance"),
)

pending = Table("pending", metadata, Column("seq", BigInteger, primary_key=True))

leaves = Table(
    "leaves",
    metadata,
    Column("leaf_index", BigInteger, primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("block_height", BigInteger, nullable=False),
)

tree_nodes = Table(
    "tree_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True),
    Column("idx", BigInteger, primary_key=True),
    Column("hash", LargeBinary, nullable=False),
)

blocks = Table(
    "blocks",
    metadata,
    Column("height", BigInteger, primary_key=True),
    Column("tree_size", BigInteger, nullable=False, unique=True),
    Column("header", LargeBinary, nullable=False),
    Column("sealed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Index("ix_blocks_unpublished", "height", postgresql_where="published_at IS NULL"),
)

nonces = Table(
    "nonces",
    metadata,
    Column("account", String(128), primary_key=True),
    Column("nonce", BigInteger, nullable=False),
)

frozen = Table(
    "frozen",
    metadata,
    Column("account", String(128), primary_key=True),
    Column("tx_id", String(64), nullable=False),
)

grants = Table(
    "grants",
    metadata,
    Column("grant_id", String(64), primary_key=True),
    Column("wallet", String(128), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("categories", ARRAY(String(64)), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("closed", String(16), nullable=True),
    CheckConstraint("remaining >= 0 AND remaining <= amount", name="ck_grants_remaining"),
    Index("ix_grants_open_expiry", "expires_at", postgresql_where="closed IS NULL"),
)

merchants = Table(
    "merchants",
    metadata,
    Column("wallet", String(128), primary_key=True),
    Column("category", String(64), nullable=False),
    Column("locally_owned", Boolean, nullable=False),
    Column("verified", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("accepts", ARRAY(String(16)), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

authority = Table(
    "authority",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("root", String(128), nullable=False),
    CheckConstraint("id = 1", name="ck_authority_single_row"),
)

roles = Table(
    "roles",
    metadata,
    Column("role", String(64), primary_key=True),
    Column("key", String(128), primary_key=True),
)

policies = Table(
    "policies",
    metadata,
    Column("policy_hash", String(64), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("document", Text, nullable=False),
    Column("tx_id", String(64), nullable=False),
)

reward_caps = Table(
    "reward_caps",
    metadata,
    Column("scope", String(16), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("period", BigInteger, primary_key=True),
    Column("paid", BigInteger, nullable=False),
)

# A settled reward's evidence, kept off the chain (`services.ledger.rewards.Disclosure`): what opens the commitment
# its public record holds. Served only to the wallet it paid and to auditors; erasing a person's data empties
# it and sets erased_at, and the chain, which holds only the commitment, still verifies.
disclosures = Table(
    "disclosures",
    metadata,
    Column("tx_id", String(64), primary_key=True),
    Column("wallet", String(64), nullable=False, index=True),
    Column("disclosure", LargeBinary, nullable=True),  # compact JSON {salt, envelope, attestation}
    Column("erased_at", DateTime(timezone=True), nullable=True),
)

# People's erasure requests (`services.ledger.erasures`), by the id of the signed request: the request as the
# person signed it (the ledger's reason for erasing) and what it erased when. The same request again erases
# nothing more.
erasures = Table(
    "erasures",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("wallet", String(64), nullable=False, index=True),
    Column("request", Text, nullable=False),  # the signed request, as JSON
    Column("disclosures", BigInteger, nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=False),
    Column("memos", BigInteger, nullable=False, server_default="0"),
    # The person's AID holder key, when their request named it (and it signed): its memos are erased too.
    Column("aid_holder", String(64), nullable=True, index=True),
)

# The disclosure opening a settled transfer's or issuer command's memo_digest (`services.ledger.memos`), kept off
# the chain with the wallets party to it: served only to them and to auditors; erasing a party's data empties
# it and sets erased_at, and the chain, which holds only the digest, still verifies.
memos = Table(
    "memos",
    metadata,
    Column("tx_id", String(64), primary_key=True),
    Column("parties", ARRAY(Text), nullable=False),
    Column("disclosure", Text, nullable=True),  # base64url of [salt, "memo", text] (RFC 9901 disclosure)
    Column("erased_at", DateTime(timezone=True), nullable=True),
    Index("memos_parties", "parties", postgresql_using="gin"),
)
