"""``crmdeals`` run as a user runs it: the installed console script as a subprocess, in a
working directory of the test's, with no ``CRMDEALS_*`` variable but those the test sets."""

import os
import subprocess
from pathlib import Path

from tests.e2e.server import crmdeals_command

TIMEOUT = 30.0
"""Generous: every command here ends in seconds, and a hang fails the test instead of it."""


def run_crmdeals(
    *arguments: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("CRMDEALS_")
    }
    environment.update(COLUMNS="200", **(env or {}))
    return subprocess.run(
        [*crmdeals_command(), *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def assert_mistake(result: subprocess.CompletedProcess[str], *names: str, lines: int = 2) -> None:
    """The rule for a mistake in a setting, an option or the surroundings: exit status 2, no
    traceback, at most ``lines`` lines, naming each of ``names``."""
    said = output(result)
    assert result.returncode == 2, (result.returncode, said)
    assert "Traceback" not in said, said
    assert len(said.strip().splitlines()) <= lines, said
    for name in names:
        assert name in said, (name, said)
