from services.common.migration_env import run_migrations
from services.ledger.tables import metadata

run_migrations(metadata)
