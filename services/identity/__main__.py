"""``python -m services.identity``: serve the identity API."""

from services.common.serve import serve
from services.common.settings import PlatformSettings
from services.identity.app import create_app
from services.identity.settings import SERVICE, IdentitySettings

if __name__ == "__main__":
    platform = PlatformSettings()
    serve(create_app(platform), SERVICE, platform, IdentitySettings().port)
