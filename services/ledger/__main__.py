"""``python -m services.ledger``: serve the ledger API with its settlement consumer and sealer."""

from services.common.serve import serve
from services.common.settings import PlatformSettings
from services.ledger.app import create_app
from services.ledger.settings import SERVICE, LedgerSettings

if __name__ == "__main__":
    platform = PlatformSettings()
    settings = LedgerSettings()
    serve(create_app(platform, settings), SERVICE, platform, settings.port)
