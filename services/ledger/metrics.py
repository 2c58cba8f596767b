"""The ledger's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

REWARDS_SETTLED = Counter("smartcity_ledger_rewards_settled_total", "Rewards settled (paid once each).")
DUPLICATES = Counter(
    "smartcity_ledger_duplicates_total",
    "Redelivered transactions that were already settled (not paid again).",
)
TRANSACTIONS = Counter("smartcity_ledger_transactions_total", "Transactions settled, by type.", ["type"])
REJECTIONS = Counter(
    "smartcity_ledger_rejections_total", "Transactions refused and dead-lettered, by reason.", ["reason"]
)
SETTLEMENT_BATCH = Histogram(
    "smartcity_ledger_settlement_batch_size",
    "Records per settlement batch (one database transaction; a batch record carries several rewards).",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
)
BLOCKS_SEALED = Counter("smartcity_ledger_blocks_sealed_total", "Blocks sealed by this process.")
TREE_SIZE = Gauge("smartcity_ledger_tree_size", "Leaves in the Merkle tree at the latest sealed block.")
BLOCK_HEIGHT = Gauge("smartcity_ledger_block_height", "Height of the latest sealed block.")
SEAL_LATENCY = Histogram(
    "smartcity_ledger_seal_duration_seconds",
    "Time to seal one block (read pending, hash, write nodes and header, commit).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
