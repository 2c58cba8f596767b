"""Child processes that do not outlive their parent, even one killed with SIGKILL (Linux)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGTERM, parent_pid: int | None = None) -> None:
    """In a child process: have the kernel send `signum` to it when its parent dies (Linux only).

    With `parent_pid`, a child whose parent died before this call (it was re-parented meanwhile) exits now.
    """
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
