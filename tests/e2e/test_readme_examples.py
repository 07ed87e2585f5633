"""The README's curl examples, pasted into a shell against a real server, print what the
README says they print."""

import os
import subprocess

import pytest

from tests.e2e.server import ServerProcess
from tests.readme import DOCUMENTED_URL, api_examples

pytestmark = pytest.mark.e2e


def test_readme_api_examples_print_what_the_readme_says(server: ServerProcess) -> None:
    examples = api_examples()
    assert len(examples) >= 8
    environment = {**os.environ, "KEY": server.key}
    for example in examples:
        if example.command.startswith("KEY="):
            continue  # the reader's own key; the test sets KEY itself
        command = example.command.replace(DOCUMENTED_URL, server.url)
        result = subprocess.run(
            ["/bin/bash", "-c", command],
            env=environment,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, (example.command, result.stderr)
        if example.expected:
            assert result.stdout.splitlines() == example.expected, example.command
