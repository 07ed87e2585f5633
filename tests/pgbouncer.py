"""PgBouncer in transaction mode in front of a PostgreSQL, for the tests that run crmdeals
through it: each transaction may get a different server connection, and only the startup
parameters of Debian's stock configuration are accepted.

Debian's ``pgbouncer`` (``apt-get install -y -q pgbouncer``) runs as the ``postgres`` OS user
(it refuses root), from a minimal configuration in a temporary directory, on a free port.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
import sqlalchemy as sa

from crmdeals.testing import free_port
from tests import services

OS_USER = "postgres"
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
WAIT_SECONDS = 20.0

CONFIGURATION = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/users.txt
pool_mode = transaction
ignore_startup_parameters = extra_float_digits
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""
"""A minimal configuration: transaction pooling, and Debian's stock
``ignore_startup_parameters`` (nothing more is allowed to the clients)."""


class PgBouncer:
    """``pgbouncer`` in front of the server of ``postgres_url``; ``url`` is the same
    database through it."""

    def __init__(self, postgres_url: str) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            services.missing("PgBouncer", "pgbouncer", FileNotFoundError("not installed"))
        if os.geteuid() != 0:
            services.missing("PgBouncer", "runuser", PermissionError("the tests run as root"))
        self._binary = binary
        self._user = pwd.getpwnam(OS_USER)
        target = sa.make_url(postgres_url)
        self.port = free_port()
        self.url = target.set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False
        )
        self.directory = Path(tempfile.mkdtemp(prefix="crmdeals-pgbouncer-"))
        (self.directory / "users.txt").write_text(f'"{target.username}" ""\n')
        (self.directory / "pgbouncer.ini").write_text(
            CONFIGURATION.format(
                host=target.host or "127.0.0.1",
                port=target.port or 5432,
                listen_port=self.port,
                directory=self.directory,
            )
        )
        for path in (self.directory, *self.directory.iterdir()):
            os.chown(path, self._user.pw_uid, self._user.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [RUNUSER, "-u", OS_USER, "--", self._binary, str(self.directory / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise AssertionError(f"PgBouncer did not start:\n{self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # runuser passes SIGTERM on to pgbouncer
            try:
                self.process.wait(WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT_SECONDS)
        shutil.rmtree(self.directory, ignore_errors=True)

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
