"""What every example shares: the services' base URLs and the development keys from arguments or the
environment, and a failure reported on stderr with a non-zero exit status."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import httpx

from smartcity_sdk import Keypair, ProblemError, VerificationError

SERVICES = {"ingest": 8101, "ledger": 8103, "identity": 8104, "directory": 8105}
"""Each service's port under ``smartcity up`` when nothing says otherwise."""


def parser(description: str, *services: str) -> argparse.ArgumentParser:
    """An argument parser with ``--<service>`` base URLs for `services` (default ``SMARTCITY_<SERVICE>_URL``,
    else ``http://127.0.0.1:<port>``)."""
    arguments = argparse.ArgumentParser(description=description)
    for name in services:
        env = f"SMARTCITY_{name.upper()}_URL"
        arguments.add_argument(
            f"--{name}",
            default=os.environ.get(env, f"http://127.0.0.1:{SERVICES[name]}"),
            help=f"the {name}'s base URL (env {env})",
        )
    return arguments


def data_dir_argument(arguments: argparse.ArgumentParser) -> None:
    """``--data-dir``: the data dir of the development stack (``smartcity up``), where its keys are."""
    arguments.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("SMARTCITY_DATA_DIR", ".smartcity")),
        help="the development stack's data dir (env SMARTCITY_DATA_DIR, default .smartcity)",
    )


def key_file(path: Path, what: str) -> Keypair:
    """The key whose seed the file at `path` holds; exits with a message if there is none."""
    try:
        return Keypair.from_file(path)
    except (OSError, ValueError) as exc:
        fail(f"cannot read {what} from {path}: {exc}")


def fail(message: str) -> NoReturn:
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def run(main: Callable[[], None]) -> None:
    """Run `main`, turning what the platform refused, a check that did not hold or a service that did not
    answer into a message and exit status 1."""
    try:
        main()
    except ProblemError as exc:
        fail(f"the platform refused: {exc}")
    except VerificationError as exc:
        fail(f"a check did not hold: {exc}")
    except httpx.TransportError as exc:
        fail(f"no answer: {type(exc).__name__}: {exc}")
