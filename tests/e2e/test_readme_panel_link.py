"""The README's panel link example, pasted into a shell against a real server, answers a
link that opens the panel."""

import json
import os
import subprocess

import httpx
import pytest

from tests.e2e.server import ServerProcess
from tests.readme import DOCUMENTED_URL, panel_link_example

pytestmark = pytest.mark.e2e


def test_the_readme_panel_link_example_answers_a_working_link(server: ServerProcess) -> None:
    with server.client() as client:
        deal = {
            "id": "1",
            "responsibleUserId": "id007",
            "name": "Daily Deal Test",
            "closed": False,
            "contacts": ["111-2e0df379-0e3c-470f-9b36"],
        }
        assert client.post("/v3/deals", json=[deal]).status_code == 200
    result = subprocess.run(
        ["/bin/bash", "-c", panel_link_example().replace(DOCUMENTED_URL, server.url)],
        env={**os.environ, "KEY": server.key},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    link = json.loads(result.stdout)
    assert link["url"].startswith(f"{server.url}/panel?token=")
    page = httpx.get(link["url"])
    assert page.status_code == 200
    assert "Daily Deal Test" in page.text
