"""``python -m services.ingest``: serve the ingest API."""

from services.common.serve import serve
from services.common.settings import PlatformSettings
from services.ingest.app import create_app
from services.ingest.settings import SERVICE, IngestSettings

if __name__ == "__main__":
    platform = PlatformSettings()
    settings = IngestSettings()
    serve(create_app(platform, settings), SERVICE, platform, settings.port)
