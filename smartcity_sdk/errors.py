"""What a call to the platform raises: `ProblemError` for every refusal (an RFC 9457 problem JSON answer)."""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://smartcity.example/problems/"
"""Every platform problem ``type`` starts so; what follows is its kind (``insufficient-funds``, ...)."""


class ProblemError(Exception):
    """The service refused the call, or could not take it (after the retries the call was allowed).

    `status` is the HTTP status; `type`, `title` and `detail` are the problem's (RFC 9457), `kind` the last part
    of its type (``insufficient-funds``, ``read-forbidden``, ...), `problem` the whole body with its extensions
    (``errors`` for a 422, ``attempts_left`` for a wrong PIN, ``results`` for readings over their rate...),
    and `retry_after_s` what the service's ``Retry-After`` said, if anything. An answer that is not problem
    JSON (a proxy's page) is raised too, with ``type`` ``about:blank`` and its text as `detail`.
    """

    def __init__(self, status: int, problem: dict[str, Any], retry_after_s: float | None = None) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", "about:blank"))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail", ""))
        self.retry_after_s = retry_after_s
        super().__init__(f"{status} {self.kind}: {self.detail}")

    @property
    def kind(self) -> str:
        """The platform's name of the problem: its type without `PROBLEM_BASE`."""
        return self.type.removeprefix(PROBLEM_BASE)
