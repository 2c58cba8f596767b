"""``python -m services.portal``: serve the portal's pages and pass their API calls on."""

from services.common.serve import serve
from services.common.settings import PlatformSettings
from services.portal.app import create_app
from services.portal.settings import SERVICE, PortalSettings

if __name__ == "__main__":
    platform = PlatformSettings()
    settings = PortalSettings()
    serve(create_app(settings), SERVICE, platform, settings.port)
