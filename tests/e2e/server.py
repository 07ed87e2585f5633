"""A real ``crmdeals serve`` process on 127.0.0.1, for end-to-end tests.

``ServerProcess`` runs the installed ``crmdeals`` console script (the one next to
``sys.executable``) in its own process group, on a free port, with the database it is given
(its own SQLite file by default) and a known bootstrap key. Its stdout and stderr go to files
(appended to across restarts), so tests can read the logs. Every wait is bounded.
"""

import contextlib
import json
import os
import resource
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

from crmdeals.testing import free_port

STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
_POLL_INTERVAL = 0.05


class ServerError(AssertionError):
    """The server did not start or stop as it should (the message holds its stderr)."""


def crmdeals_command() -> list[str]:
    """The installed ``crmdeals`` console script, beside the running interpreter."""
    script = Path(sys.executable).with_name("crmdeals")
    if not script.exists():
        raise ServerError(f"no `crmdeals` script beside {sys.executable}; install the package")
    return [str(script)]


class ServerProcess:
    """``crmdeals serve --port PORT`` as a subprocess; ``start()`` again after ``stop()`` or
    ``kill()`` serves the same database on the same port."""

    def __init__(
        self,
        directory: Path,
        *,
        database_url: str | None = None,
        key: str | None = None,
        port: int | None = None,
        workers: int | None = None,
        env: dict[str, str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
        file_limit: tuple[int, int] | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.database_url = database_url or f"sqlite:///{directory / 'crmdeals.db'}"
        self.stdout_path = directory / "stdout.log"
        self.stderr_path = directory / "stderr.log"
        self.key = key or secrets.token_hex(16)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.file_limit = file_limit
        """``(soft, hard)`` RLIMIT_NOFILE the server starts with; ``None``: the test's."""
        self.process: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and wait until ``GET /healthz`` answers 200."""
        if self.running:
            raise ServerError("the server is running already")
        command = [*crmdeals_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers is not None:
            command += ["--workers", str(self.workers)]
        self._close_files()
        stdout = self.stdout_path.open("ab")
        stderr = self.stderr_path.open("ab")
        self._files = [stdout, stderr]
        self.process = subprocess.Popen(
            command,
            cwd=self.directory,  # so no stray `.env` file is read
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group: kill() reaches the workers too
            # Only a system call in the child, no lock a thread could hold: safe with threads.
            preexec_fn=self._set_file_limit if self.file_limit else None,  # noqa: PLW1509
        )
        try:
            self._wait_until_healthy()
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then wait (bounded) for a graceful exit; the exit code."""
        process = self._require_process()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServerError(
                f"the server did not exit within {timeout} s of SIGTERM\n{self.stderr()}"
            ) from None
        self._wait_for_group_to_end(timeout)
        self._close_files()
        return code

    def kill(self) -> None:
        """SIGKILL the server and every process of its group (workers included)."""
        process = self._require_process()
        self._signal_group(signal.SIGKILL)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ServerError("the server survived SIGKILL") from None
        self._wait_for_group_to_end(STOP_TIMEOUT)
        self._close_files()

    def close(self) -> None:
        """Stop the server if it runs (SIGKILL if SIGTERM is not enough)."""
        if self.process is None:
            return
        if self.running:
            with contextlib.suppress(ServerError):  # stop() has killed it then
                self.stop()
        elif self._group_alive():  # workers of a server that died
            self.kill()
        else:
            self._close_files()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- talking to it -----------------------------------------------------------------------

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        """A client of the server, sending ``Bearer <key>`` (the bootstrap key by default)."""
        headers = {"Authorization": f"Bearer {key or self.key}"}
        headers.update(kwargs.pop("headers", {}))
        return httpx.Client(base_url=self.url, headers=headers, timeout=10.0, **kwargs)

    def cli(self, *arguments: str) -> str:
        """Run ``crmdeals ARGUMENTS`` on the server's database (``keys revoke ...``); its
        stdout, stripped."""
        environment = {**os.environ, "CRMDEALS_DATABASE_URL": self.database_url}
        finished = subprocess.run(
            [*crmdeals_command(), *arguments],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return finished.stdout.strip()

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The stderr lines that are JSON objects (the server's log records)."""
        records = []
        for line in self.stderr().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def wait_for_log(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = STARTUP_TIMEOUT
    ) -> list[dict[str, Any]]:
        """Wait (bounded) until ``predicate(log_records())`` holds; the records. Log lines can
        be written after the response they describe was sent."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.log_records()
            if predicate(records):
                return records
            if time.monotonic() >= deadline:
                raise ServerError(f"the log did not show it within {timeout} s\n{self.stderr()}")
            time.sleep(_POLL_INTERVAL)

    # -- internals ---------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        environment = {
            name: value for name, value in os.environ.items() if not name.startswith("CRMDEALS_")
        }
        environment.update(
            CRMDEALS_DATABASE_URL=self.database_url,
            CRMDEALS_BOOTSTRAP_KEY=self.key,
        )
        environment.update(self.extra_env)
        return environment

    def _wait_until_healthy(self) -> None:
        process = self._require_process()
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no answer yet"
        with httpx.Client(base_url=self.url, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise ServerError(
                        f"the server exited with {process.returncode} while starting\n"
                        f"{self.stderr()}"
                    )
                try:
                    response = client.get("/healthz")
                except httpx.HTTPError as error:
                    last_error = repr(error)
                else:
                    if response.status_code == 200:
                        return
                    last_error = f"{response.status_code} {response.text}"
                time.sleep(_POLL_INTERVAL)
        raise ServerError(
            f"GET /healthz did not answer 200 within {self.startup_timeout} s "
            f"({last_error})\n{self.stderr()}"
        )

    def _set_file_limit(self) -> None:
        """In the child, before ``exec``: as a service manager would."""
        assert self.file_limit is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, self.file_limit)

    def _require_process(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise ServerError("the server was never started")
        return self.process

    def _signal_group(self, signal_number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._require_process().pid, signal_number)

    def _group_alive(self) -> bool:
        """Whether a process of the server's group still runs (zombies do not count: nobody
        may reap orphaned workers in a container)."""
        group = self._require_process().pid
        proc = Path("/proc")
        if not proc.is_dir():
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return False
            return True
        for stat in proc.glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue  # it ended while we looked
            state, process_group = fields[0], int(fields[2])
            if process_group == group and state not in {"Z", "X"}:
                return True
        return False

    def _wait_for_group_to_end(self, timeout: float) -> None:
        """Wait (bounded) for the workers to end too; SIGKILL stragglers."""
        deadline = time.monotonic() + timeout
        while self._group_alive():
            if time.monotonic() >= deadline:
                self._signal_group(signal.SIGKILL)
                raise ServerError(f"server processes outlived the server by {timeout} s")
            time.sleep(_POLL_INTERVAL)

    def _close_files(self) -> None:
        for file in self._files:
            file.close()
        self._files = []
