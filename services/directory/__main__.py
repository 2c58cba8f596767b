"""``python -m services.directory``: serve the directory API."""

from services.common.serve import serve
from services.common.settings import PlatformSettings
from services.directory.app import create_app
from services.directory.settings import SERVICE, DirectorySettings

if __name__ == "__main__":
    platform = PlatformSettings()
    settings = DirectorySettings()
    serve(create_app(platform, settings), SERVICE, platform, settings.port)
