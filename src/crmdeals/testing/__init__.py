"""crmdeals as a fake of the CRM API inside your own tests.

With pytest, installing crmdeals is enough: its plugin gives the ``crmdeals_server``
fixture (``crmdeals.testing.pytest_plugin``). Without pytest::

    from crmdeals.testing import SandboxServer

    with SandboxServer() as server:
        server.fail_next(503, route="POST /v3/deals")
        run_my_sync(server.url, server.api_key)
        assert [r["status"] for r in server.requests()] == [200, 503]
"""

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from crmdeals import limits

__all__ = [
    "STARTUP_TIMEOUT",
    "STOP_TIMEOUT",
    "SandboxServer",
    "answers_healthz",
    "free_port",
]

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SandboxServer:
    """A real ``crmdeals serve --sandbox`` process on a free port of 127.0.0.1, with a
    database of its own in a temporary directory and one account whose key is
    ``api_key``. ``rate_limit`` is the server's (``"500/5s"``, the platform's; ``"off"``).
    """

    def __init__(self, *, rate_limit: str = "500/5s") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = secrets.token_hex(16)
        self.rate_limit = rate_limit
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._http: httpx.Client | None = None

    # -- the process -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the server; return once it answers (raise if it does not within 30 s)."""
        self._directory = tempfile.TemporaryDirectory(prefix="crmdeals-sandbox-")
        directory = Path(self._directory.name)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CRMDEALS_")}
        environment |= {
            "CRMDEALS_DATABASE_URL": f"sqlite:///{directory / 'sandbox.db'}",
            "CRMDEALS_BOOTSTRAP_KEY": self.api_key,
            "CRMDEALS_RATE_LIMIT": self.rate_limit,
            "CRMDEALS_LOG_LEVEL": "warning",
        }
        command = [sys.executable, "-m", "crmdeals", "serve", "--sandbox"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with (directory / "server.log").open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 (our own server, no shell)
                command, cwd=directory, env=environment, stdout=log, stderr=log
            )
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30
        )
        self._wait_until_healthy()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 30 s) and delete its database."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_TIMEOUT)
            self._process = None
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the sandbox -----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the account's deals, users, contacts, pipelines, armed faults and request
        log."""
        self._call("POST", "/sandbox/reset")

    def seed(self, count: int, seed: int = 0, *, users: int = 0, contacts: int = 0) -> int:
        """Add ``count`` made-up deals, and ``users`` users and ``contacts`` contacts that
        the deals name (the same ones for the same ``seed``); how many deals were made.
        With users and contacts both, ``drift()`` is empty: the deals name nothing else."""
        body = {"count": count, "seed": seed, "users": users, "contacts": contacts}
        answer: int = self._call("POST", "/sandbox/seed", body)["count"]
        return answer

    # -- reading back what the account holds. ``deals()``, ``users()`` and ``contacts()``
    # read through the API as your code does, so their requests show in ``requests()`` and
    # meet armed faults: read after your code ran. ``drift()`` is crmdeals' own route,
    # which faults and the request log leave alone.

    def deals(self) -> list[dict[str, Any]]:
        """Every deal of the account, in id order, as ``GET /v3/deals`` pages them."""
        return self._all_pages("/v3/deals")

    def users(self) -> list[dict[str, Any]]:
        """Every user of the account, by name then id (``GET /v3/users``)."""
        listed: list[dict[str, Any]] = self._call("GET", "/v3/users")
        return listed

    def contacts(self) -> list[dict[str, Any]]:
        """Every contact of the account, in id order, as ``GET /v3/contacts`` pages them."""
        return self._all_pages("/v3/contacts")

    def drift(self) -> list[dict[str, Any]]:
        """The whole drift report (``GET /crmdeals/drift``): each deal or contact field that
        names a user or contact the account lacks, i.e. what your code forgot to send."""
        return self._all_pages("/crmdeals/drift")

    def fail_next(
        self,
        status: int | None = 503,
        *,
        route: str | None = None,
        retry_after: int | None = None,
        delay_ms: int | None = None,
        times: int = 1,
    ) -> dict[str, Any]:
        """Make the next ``times`` requests to ``route`` (``"POST /v3/deals"``; any API route
        by default) answer ``status`` (``None``: do not fail) after ``delay_ms``, storing
        nothing. The armed fault, as the server lists it."""
        fault = {"route": route, "status": status, "retryAfter": retry_after}
        fault |= {"delayMs": delay_ms, "times": times}
        armed: dict[str, Any] = self._call("POST", "/sandbox/faults", fault)
        return armed

    def faults(self) -> list[dict[str, Any]]:
        """The armed faults, with how many requests each will still hit."""
        armed: list[dict[str, Any]] = self._call("GET", "/sandbox/faults")
        return armed

    def requests(self, limit: int = 100) -> list[dict[str, Any]]:
        """The account's latest API requests, newest first: ``time``, ``method``, ``path``,
        ``status``, ``durationMs``, ``deals`` (in the body) and ``error`` (its code)."""
        logged: list[dict[str, Any]] = self._call("GET", f"/sandbox/requests?limit={limit}")
        return logged

    # -- internals -------------------------------------------------------------------------

    def _all_pages(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paged list (pages of ``{"count", "data"}``), read until a page
        comes back short or holds the last of ``count``."""
        items: list[dict[str, Any]] = []
        while True:
            page = self._call("GET", f"{path}?offset={len(items)}")
            items.extend(page["data"])
            if len(page["data"]) < limits.PAGE_SIZE or len(items) >= page["count"]:
                return items

    def _call(self, method: str, path: str, body: object = None) -> Any:
        if self._http is None:
            raise RuntimeError("the sandbox server is not running: start() it first")
        response = self._http.request(method, path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def _wait_until_healthy(self) -> None:
        assert self._process is not None
        assert self._directory is not None
        if answers_healthz(self.url, self._process):
            return
        log = (Path(self._directory.name) / "server.log").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"the crmdeals sandbox server did not start:\n{log[-2000:]}")


def answers_healthz(
    url: str, process: subprocess.Popen[bytes], timeout: float = STARTUP_TIMEOUT
) -> bool:
    """Wait (at most ``timeout`` seconds) until ``GET url/healthz`` answers 200; whether it
    did before ``process`` ended or the time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False
