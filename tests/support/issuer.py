"""The city's issuer on a running platform: its signed commands (mint, fund, grant...) posted to the ledger."""

from __future__ import annotations

from typing import Any

import httpx

from bench._running import RunningPlatform
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair


def issue(platform: RunningPlatform, issuer: Keypair, *commands: dict[str, Any]) -> None:
    """The issuer's signed commands, each with the next nonce the ledger expects of it (the issuer key is the
    session's: other tests may have used some nonces)."""
    with httpx.Client(base_url=platform.url("ledger"), timeout=15) as http:
        answer = http.get(f"/v1/accounts/{issuer.did}/nonce", auth=SignedReadAuth(issuer))
        assert answer.status_code == 200, answer.text
        nonce = answer.json()["next_nonce"]
        for command in commands:
            body = issuer.sign({**command, "issuer": issuer.did, "nonce": nonce})
            answer = http.post("/v1/issuer/commands", json=body)
            assert answer.status_code == 201, answer.text
            nonce += 1
