"""``python -m services.simulator``: a fleet of devices sending signed readings to ingest."""

from services.common.logs import configure_logging
from services.common.settings import PlatformSettings
from services.simulator.run import run_until_signalled

if __name__ == "__main__":
    platform = PlatformSettings()
    configure_logging("simulator", platform.log_format, platform.log_level)
    run_until_signalled()
