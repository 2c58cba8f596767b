"""The policy file a rewards worker decides under: loaded at start, reloaded when it changes, a bad new
version refused while the running one stays."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from services.common.policy import Policy, PolicyError, load_policy
from services.rewards.metrics import POLICY_INFO, POLICY_LOADS

log = logging.getLogger(__name__)


@dataclass
class PolicyFile:
    """The policy in force and the file it comes from; `reload` swaps in a new valid version."""

    path: Path
    policy: Policy
    stamp: tuple[int, int] = (0, 0)

    @classmethod
    def open(cls, path: Path) -> PolicyFile:
        """Load the policy at `path`; raises `PolicyError` (a worker does not start without a policy)."""
        stamp = _stamp(path)
        policy = load_policy(path)
        POLICY_INFO.labels(policy.version).set(1)
        POLICY_LOADS.labels("loaded").inc()
        return cls(path, policy, stamp)

    def reload(self) -> bool:
        """Load the file again if it changed; True if a new policy is in force. A bad file is refused."""
        try:
            stamp = _stamp(self.path)
        except OSError as exc:
            stamp = (-1, -1)
            if stamp != self.stamp:
                log.error("policy file %s is gone (%s); policy %s stays", self.path, exc, self.policy.version)
        if stamp == self.stamp:
            return False
        self.stamp = stamp
        try:
            policy = load_policy(self.path)
        except PolicyError as exc:
            POLICY_LOADS.labels("refused").inc()
            log.error("refused the new policy file: %s; policy %s stays in force", exc, self.policy.version)
            return False
        POLICY_LOADS.labels("loaded").inc()
        POLICY_INFO.labels(self.policy.version).set(0)
        POLICY_INFO.labels(policy.version).set(1)
        log.info("policy %s in force (was %s), from %s", policy.version, self.policy.version, self.path)
        self.policy = policy
        return True


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
