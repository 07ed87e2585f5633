"""What the benchmarks share: a real ``crmdeals serve`` process to measure."""

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from crmdeals.testing import free_port


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
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the server at {url} did not start")
