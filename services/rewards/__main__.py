"""``python -m services.rewards``: run the rewards worker until SIGINT/SIGTERM.

The equivalent of ``faust -A services.rewards.app worker -l info --web-port $REWARDS_WEB_PORT``, with the
platform's settings and logging. On a signal the worker commits the offsets of the readings whose records
the broker acknowledged, drops the batch in hand (it is consumed again by the next worker), leaves the
consumer group and exits with status 0. If its agent stopped or commits nothing of what it holds for
CONSUMER_STALL_S, it stops the same way and exits with status 70, to be started again.
"""

import logging
import sys

import faust
from confluent_kafka import KafkaException

from services.common import liveness
from services.common.gc_tuning import tune_for_throughput
from services.common.kafka import ensure_topics
from services.common.logs import configure_logging
from services.common.policy import PolicyError
from services.common.settings import PlatformSettings
from services.common.topics import READINGS, REWARD_DECISIONS, REWARDS, ZONE_STATS
from services.rewards.app import create_app
from services.rewards.settings import SERVICE, RewardsSettings

log = logging.getLogger("services.rewards")


def main() -> None:
    platform = PlatformSettings()
    settings = RewardsSettings()
    configure_logging(SERVICE, platform.log_format, platform.log_level)
    try:
        # Normally done by the platform already; a missing topic would be auto-created with other partitions.
        ensure_topics(
            platform.bootstrap_servers, (READINGS, REWARDS, READINGS.dlq, REWARD_DECISIONS, ZONE_STATS)
        )
    except KafkaException as exc:
        log.error("the broker at %s does not answer: %s", platform.bootstrap_servers, exc)
        sys.exit(1)
    try:
        app = create_app(platform, settings)
    except PolicyError as exc:
        log.error("no usable reward policy: %s", exc)
        sys.exit(2)
    log.info(
        "rewards worker %s: %s -> %s under policy %s on %s; web on http://%s:%d",
        settings.app_id,
        READINGS.name,
        REWARDS.name,
        app.rewards_policy.policy.version,
        platform.bootstrap_servers,
        platform.bind_host,
        settings.web_port,
    )
    # mode's Worker installs the SIGINT/SIGTERM handlers; logging stays ours (override_logging=False).
    worker = faust.Worker(app, quiet=True, override_logging=False)
    worker.spinner = None  # a terminal progress spinner; it would write escape codes into the logs
    tune_for_throughput()
    liveness.exit_when_stuck()
    try:
        worker.execute_from_commandline()  # raises SystemExit when the worker has stopped
    except SystemExit as stop:
        # A worker stopped because its agent was stuck exits non-zero, to be started again.
        sys.exit(liveness.exit_code() or stop.code)
    finally:
        log.info("rewards worker %s stopped", settings.app_id)


if __name__ == "__main__":
    main()
