"""The OpenAPI document of the rewards worker's web server (``/healthz``, ``/readyz``, ``/metrics``), which the
worker serves at ``/openapi.json``. Faust's web server (aiohttp) makes none, so it is built here from the models
the pages answer with (`RewardsReadiness` is what ``/readyz`` sends, checked by pydantic)."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import Field

from services.common.http import Health, Readiness
from services.common.openapi import answers, complete, examples
from services.rewards.settings import SERVICE

JSON = "application/json"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
CHECKS = {"broker": True, "policy_on_chain": True, "consents": True, "consumer": True, "agent": True}
POLICY = {
    "policy_version": "2026.12-3",
    "policy_hash": "97b0497d7d76f3017450555cc9059671986415be1c59dc27eef228bbad205b95",
}


class RewardsReadiness(Readiness):
    """Whether each of the worker's checks holds, and the reward policy in force."""

    model_config = examples(
        {"status": "ready", "service": SERVICE, "checks": CHECKS, **POLICY},
        {
            "status": "not-ready",
            "service": SERVICE,
            "checks": {**CHECKS, "consumer": False},
            **POLICY,
        },
    )
    policy_version: str = Field(description="The version of the policy file in force.")
    policy_hash: str = Field(description="sha256 hex of its JCS bytes, as the chain names it.")


def _operation(operation_id: str, summary: str, responses: dict[int | str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "tags": ["operations"],
            "operationId": operation_id,
            "summary": summary,
            "responses": {str(status): response for status, response in responses.items()},
        }
    }


@cache
def document() -> dict[str, Any]:
    """The document (made once)."""
    made: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": f"smartcity {SERVICE}",
            "version": "0.1.0",
            "description": "The rewards worker (Faust) turns readings into micro-rewards; its web server "
            "answers for operations only.",
        },
        "paths": {
            "/healthz": _operation("healthz", "Liveness", answers(Health, media_type=JSON)),
            "/readyz": _operation(
                "readyz",
                "Readiness: the broker answers, the policy is on the chain, the consent view has caught up, the "
                "consumer joined its group and the agent moves",
                {
                    **answers(RewardsReadiness, media_type=JSON, description="Ready"),
                    **answers(
                        RewardsReadiness,
                        status=503,
                        media_type=JSON,
                        description="Not ready: the checks that fail are false",
                    ),
                },
            ),
            "/metrics": _operation(
                "metrics",
                "Prometheus metrics (the worker's and Faust's)",
                answers(
                    {"type": "string", "description": "The Prometheus text exposition format."},
                    "# HELP smartcity_rewards_readings_total Readings decided\n"
                    "# TYPE smartcity_rewards_readings_total counter\n"
                    'smartcity_rewards_readings_total{outcome="rewarded"} 48211.0\n',
                    media_type=PROMETHEUS,
                ),
            ),
            "/openapi.json": _operation(
                "openapi",
                "This document",
                answers(
                    {
                        "type": "object",
                        "description": "An OpenAPI 3.1 document.",
                        "required": ["openapi", "info", "paths"],
                        "properties": {
                            "openapi": {"type": "string"},
                            "info": {"type": "object"},
                            "paths": {"type": "object"},
                        },
                    },
                    {
                        "openapi": "3.1.0",
                        "info": {"title": f"smartcity {SERVICE}", "version": "0.1.0"},
                        "paths": {},
                    },
                    media_type=JSON,
                ),
            ),
        },
    }
    return complete(made)
