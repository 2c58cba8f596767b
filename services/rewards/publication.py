"""Publishing the policies the worker decides under to the ledger, before any reward names them.

Every reward names the hash of its policy, and the ledger settles a reward only under a policy on the chain.
So the worker decides a batch only once the policy in force is there: `PolicyPublisher.ensure` posts the
signed document (``POST /v1/policies``, signed by the worker's key, which must hold the policy-publisher
role) and returns once the ledger has it, retrying meanwhile. A batch that waits is not acknowledged, so
nothing is lost while the ledger is away; the readiness check says so.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from services.common.policy import Policy
from services.common.signing import Keypair

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


class PolicyPublisher:
    """Puts each policy on the chain once; with no ledger URL, publishes nothing (the policy must reach the
    chain another way, or the ledger refuses its rewards as ``unknown-policy``)."""

    def __init__(self, ledger_url: str, key: Keypair, timeout_s: float = 5.0) -> None:
        self.ledger_url = ledger_url.rstrip("/")
        self.key = key
        self.timeout_s = timeout_s
        self.published: set[str] = set()
        self.waiting_since: float | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.ledger_url)

    def publication(self, policy: Policy) -> dict[str, object]:
        """The signed body of ``POST /v1/policies`` (deterministic: the same policy gives the same bytes)."""
        return self.key.sign({"publisher": self.key.did, "document": dict(policy.document or {})})

    async def ensure(self, policy: Policy) -> None:
        """Return once `policy` is on the chain (at once if it was published by this worker already)."""
        if not self.enabled or policy.hash in self.published:
            return
        backoff_s = 0.5
        self.waiting_since = self.waiting_since or asyncio.get_running_loop().time()
        async with httpx.AsyncClient(base_url=self.ledger_url, timeout=self.timeout_s) as client:
            while True:
                try:
                    response = await client.post("/v1/policies", json=self.publication(policy))
                    if response.status_code in (200, 201):
                        break
                    problem = f"{response.status_code} {response.text[:300]}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                log.error(
                    "policy %s (%s) is not on the chain yet (%s); decisions wait, retrying in %.1fs",
                    policy.version,
                    policy.hash,
                    problem,
                    backoff_s,
                )
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)
        self.published.add(policy.hash)
        self.waiting_since = None
        log.info("policy %s is on the chain as %s", policy.version, policy.hash)
