"""What the benchmarks share: a real ``crmdeals serve`` process to measure."""

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from crmdeals.testing import answers_healthz, free_port


@dataclass(frozen=True)
class Server:
    url: str
    key: str
    pid: int


@contextmanager
def crmdeals_server(
    directory: Path, *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """``crmdeals serve`` on a free port with a SQLite file in ``directory`` (unless ``env``
    names another database) and a known key; stopped afterwards."""
    key = secrets.token_hex(16)
    port = free_port()
    environment = {name: value for name, value in os.environ.items() if "CRMDEALS_" not in name}
    environment |= {
        "CRMDEALS_DATABASE_URL": f"sqlite:///{directory / 'bench.db'}",
        "CRMDEALS_BOOTSTRAP_KEY": key,
        "CRMDEALS_LOG_LEVEL": "warning",
        **(env or {}),
    }
    command = [sys.executable, "-m", "crmdeals", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    server = subprocess.Popen(
        command,
        cwd=directory,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", server)
        yield Server(f"http://127.0.0.1:{port}", key, server.pid)
    finally:
        server.terminate()
        server.wait(60)


def wait_until_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    """Return once the server at ``url`` answers; stop the benchmark if it does not."""
    if not answers_healthz(url, process):
        process.kill()
        raise SystemExit(f"the server at {url} did not start")
