"""A PostgreSQL cluster of one test alone, so that it can be stopped, killed, frozen and
restarted without touching the machine's own PostgreSQL (which other tests share).

Debian's server binaries (``initdb``, ``pg_ctl``, ``postgres``) run as the ``postgres``
OS user (PostgreSQL refuses root; the tests run as root), with the data directory in a
new temporary directory that user owns, on a free port of 127.0.0.1, with trust
authentication. Every wait is bounded.
"""

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg

from crmdeals.testing import free_port
from tests import services

OS_USER = "postgres"
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
DATABASE = "crmdeals"
BINARY_DIRECTORIES = ("/usr/local/bin", "/usr/lib/postgresql/15/bin")
WAIT_SECONDS = 30.0
_POLL_INTERVAL = 0.05


def _binary(name: str) -> str:
    for directory in (*BINARY_DIRECTORIES, *os.environ.get("PATH", "").split(os.pathsep)):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    services.missing(
        "PostgreSQL server", name, FileNotFoundError(f"no {name} in {BINARY_DIRECTORIES}")
    )
    raise AssertionError("not reached: missing() skips or fails")


class PostgresCluster:
    """``initdb`` then ``pg_ctl start`` in a temporary directory; ``url`` is its database
    ``crmdeals`` (a SQLAlchemy URL, as ``CRMDEALS_DATABASE_URL`` takes it)."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            services.missing(
                "PostgreSQL server", "runuser", PermissionError("the tests must run as root")
            )
        try:
            self._user = pwd.getpwnam(OS_USER)
        except KeyError as error:
            services.missing("PostgreSQL server", f"OS user {OS_USER}", error)
        self._initdb, self._pg_ctl = _binary("initdb"), _binary("pg_ctl")
        self.directory = Path(tempfile.mkdtemp(prefix="crmdeals-pg-"))
        os.chown(self.directory, self._user.pw_uid, self._user.pw_gid)
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"
        self._frozen: list[int] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def create(self) -> None:
        """``initdb`` and start; then create the database."""
        self._as_postgres(
            self._initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale", "C", "--no-sync",
        )  # fmt: skip
        self.start()
        with psycopg.connect(self.admin_url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{DATABASE}"')

    def start(self) -> None:
        """``pg_ctl start``, waiting until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c fsync=off -c max_connections=50"  # fsync: a killed process loses nothing
        )
        self._as_postgres(
            self._pg_ctl, "start", "-D", str(self.data), "-l", str(self.directory / "log"),
            "-w", "-t", str(int(WAIT_SECONDS)), "-o", options,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE``: the server ends its connections and exits."""
        self._as_postgres(
            self._pg_ctl, "stop", "-D", str(self.data), "-m", mode,
            "-w", "-t", str(int(WAIT_SECONDS)),
        )  # fmt: skip

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster, as the kernel's OOM killer would; then wait (bounded)
        until its backends, which notice, are gone too, so that it can start again."""
        processes = self.processes()
        os.kill(processes[0], signal.SIGKILL)
        deadline = time.monotonic() + WAIT_SECONDS
        while any(_alive(pid) for pid in processes):
            if time.monotonic() > deadline:
                raise AssertionError(f"PostgreSQL processes outlived the postmaster: {processes}")
            time.sleep(_POLL_INTERVAL)
        # The dead postmaster may stay a zombie (nobody reaps orphans in a container), which
        # its lock file's check takes for alive: the file goes, as a reboot would clear it.
        (self.data / "postmaster.pid").unlink(missing_ok=True)

    def freeze(self) -> None:
        """SIGSTOP every process of the server: its connections stay open, nothing answers.
        The postmaster stops first, and its children are listed once it has: a backend it
        forked meanwhile (a pool opening a connection) would otherwise go on answering."""
        postmaster = self.processes()[0]
        os.kill(postmaster, signal.SIGSTOP)
        self._frozen = [postmaster]
        deadline = time.monotonic() + WAIT_SECONDS
        while _state(postmaster) != "T":
            if time.monotonic() > deadline:
                raise AssertionError(f"the postmaster ({postmaster}) did not stop")
            time.sleep(_POLL_INTERVAL)
        for pid in self.processes()[1:]:
            os.kill(pid, signal.SIGSTOP)
            self._frozen.append(pid)

    def thaw(self) -> None:
        """SIGCONT what ``freeze`` stopped."""
        for pid in self._frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._frozen = []

    def close(self) -> None:
        """Stop the server (immediately; it may be killed or frozen) and delete its files."""
        self.thaw()
        if self._postmaster() is not None:
            with contextlib.suppress(subprocess.SubprocessError, AssertionError):
                self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- looking at it -----------------------------------------------------------------------

    def admin_url(self, database: str = "postgres") -> str:
        """A psycopg URL of a database of the cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def processes(self) -> list[int]:
        """The postmaster's pid, then those of its children."""
        postmaster = self._postmaster()
        if postmaster is None:
            raise AssertionError("PostgreSQL does not run")
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue  # it ended while we looked
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def log(self) -> str:
        path = self.directory / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- internals ---------------------------------------------------------------------------

    def _postmaster(self) -> int | None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def _as_postgres(self, *command: str) -> None:
        finished = subprocess.run(
            [RUNUSER, "-u", OS_USER, "--", *command],
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS + 10,
            check=False,
        )
        if finished.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} failed ({finished.returncode}):\n"
                f"{finished.stdout}{finished.stderr}\n{self.log()}"
            )


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: nobody may reap orphans in a container)."""
    return _state(pid) not in {"Z", "X", ""}


def _state(pid: int) -> str:
    """The state of process ``pid`` (``/proc``: R, S, T for stopped, Z, ...); "" when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return ""
