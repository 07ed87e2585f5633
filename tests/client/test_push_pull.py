"""``crmdeals push`` and ``pull``, run as commands against a real server: files of every
format with awkward values go up and come back unchanged, invalid rows are reported by line,
``--strict``, ``--mirror`` and ``--dry-run`` do what they say, and the README's worked example
prints what the README says."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crmdeals.deals.validation import check_deal
from crmdeals.files import read_deals
from tests.command import assert_mistake, run_crmdeals
from tests.conftest import all_deals
from tests.e2e.server import ServerProcess, crmdeals_command
from tests.readme import DOCUMENTED_URL, push_example

pytestmark = pytest.mark.e2e


AWKWARD: list[dict[str, Any]] = [
    {
        "id": 'comma,quote"newline\nsemicolon;',
        "responsibleUserId": "rep; 1",
        "name": 'A "quoted", multi-line\nname; with semicolons',
        "uri": "https://crm.example.com/deals/1?a=1&b=2",
        "contacts": ["c;1", "back\\slash", "plain"],
        "closed": False,
    },
    {
        "id": "i" * 100,
        "responsibleUserId": "Ünïcödé",
        "name": "日本語の取引 — ✓",
        "uri": None,
        "contacts": ["контакт"],
        "closed": True,
    },
    {
        "id": "42",
        "responsibleUserId": "7",
        "name": "linked, not uri'd",
        "link": "https://crm.example.com/deals/42",
        "contacts": ["c1", "c2"],
        "closed": False,
    },
]
"""What a CRM might export; the last one names its link ``link``, the contract's synonym."""


def run(server: ServerProcess, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "CRMDEALS_URL": server.url, "CRMDEALS_API_KEY": server.key}
    return subprocess.run(
        [*crmdeals_command(), *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_file(path: Path, deals: list[dict[str, Any]]) -> None:
    """``deals`` written as a CRM export would be, in the format of ``path``'s suffix."""
    if path.suffix == ".json":
        path.write_text(json.dumps(deals, ensure_ascii=False, indent=2), encoding="utf-8")
    elif path.suffix == ".jsonl":
        lines = [json.dumps(deal, ensure_ascii=False) for deal in deals]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        with path.open("w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(
                ["id", "responsibleUserId", "name", "uri", "link", "contacts", "closed"]
            )
            for deal in deals:
                contacts = [c.replace("\\", "\\\\").replace(";", "\\;") for c in deal["contacts"]]
                writer.writerow(
                    [
                        deal["id"],
                        deal["responsibleUserId"],
                        deal["name"],
                        deal.get("uri") or "",
                        deal.get("link") or "",
                        ";".join(contacts),
                        "true" if deal["closed"] else "false",
                    ]
                )


def expected(deals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the server holds after an upload of ``deals``: normalised, in id order."""
    stored = []
    for deal in deals:
        checked = check_deal(deal)
        assert not isinstance(checked, dict), checked
        stored.append(
            {
                "id": checked.id,
                "responsibleUserId": checked.responsibleUserId,
                "name": checked.name,
                "uri": checked.uri,
                "contacts": checked.contacts,
                "closed": checked.closed,
            }
        )
    return sorted(stored, key=lambda deal: deal["id"].encode())


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
def test_push_then_pull_gives_the_file_back(
    server: ServerProcess, tmp_path: Path, suffix: str
) -> None:
    source = tmp_path / f"export{suffix}"
    write_file(source, AWKWARD)
    pushed = run(server, "push", str(source), cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    assert "Pushed 3 deals" in pushed.stderr
    with server.client() as client:
        assert all_deals(client) == expected(AWKWARD)

    pulled_path = tmp_path / f"pulled{suffix}"
    pulled = run(server, "pull", "-o", str(pulled_path), cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    assert [item.deal for item in read_deals(pulled_path)] != []
    again = run(server, "push", str(pulled_path), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    with server.client() as client:
        assert all_deals(client) == expected(AWKWARD)  # the pulled file pushes as the same
    second_pull = tmp_path / f"second{suffix}"
    assert run(server, "pull", "-o", str(second_pull), cwd=tmp_path).returncode == 0
    assert second_pull.read_bytes() == pulled_path.read_bytes()


def test_pull_writes_jsonl_to_stdout_by_default(server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "export.json"
    write_file(source, AWKWARD)
    assert run(server, "push", str(source), cwd=tmp_path).returncode == 0
    pulled = run(server, "pull", cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    assert [json.loads(line) for line in pulled.stdout.splitlines()] == expected(AWKWARD)


def test_invalid_rows_are_reported_by_line_and_the_valid_ones_still_go(
    server: ServerProcess, tmp_path: Path
) -> None:
    source = tmp_path / "export.csv"
    source.write_text(
        "id,responsibleUserId,name,uri,contacts,closed\n"
        'good-1,u,"two-line\nname",,c,false\n'
        "bad-uri,u,n,javascript:alert(1),c,false\n"
        "good-2,u,n,,c,true\n"
        "bad-closed,u,n,,c,maybe\n"
        ",u,no id,,c,false\n",
        encoding="utf-8",
    )
    pushed = run(server, "push", str(source), cwd=tmp_path)
    assert pushed.returncode == 1
    assert "line 4: uri:" in pushed.stderr
    assert "line 6: closed:" in pushed.stderr
    assert "line 7: id:" in pushed.stderr
    assert "3 invalid rows were not sent" in pushed.stderr
    with server.client() as client:
        assert [deal["id"] for deal in all_deals(client)] == ["good-1", "good-2"]


def test_strict_sends_nothing_when_a_row_is_invalid(server: ServerProcess, tmp_path: Path) -> None:
    source = tmp_path / "export.jsonl"
    source.write_text(
        json.dumps(AWKWARD[0]) + "\n" + "{not json\n" + json.dumps({"id": "x"}) + "\n",
        encoding="utf-8",
    )
    pushed = run(server, "push", "--strict", str(source), cwd=tmp_path)
    assert pushed.returncode == 1
    assert "line 2: line: not JSON" in pushed.stderr
    assert "line 3: responsibleUserId:" in pushed.stderr
    assert "nothing was sent" in pushed.stderr
    with server.client() as client:
        assert all_deals(client) == []


def test_a_file_that_is_not_deals_is_refused_whole(server: ServerProcess, tmp_path: Path) -> None:
    for name, content in (("broken.json", '[{"id": 1},\n{'), ("deals.txt", "id\n1\n")):
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        pushed = run(server, "push", str(path), cwd=tmp_path)
        assert pushed.returncode == 1
        assert "error:" in pushed.stderr
    with server.client() as client:
        assert all_deals(client) == []


def test_mirror_dry_run_changes_nothing_and_mirror_makes_the_server_equal_the_file(
    server: ServerProcess, tmp_path: Path
) -> None:
    before = tmp_path / "before.jsonl"
    write_file(before, [*AWKWARD, {**AWKWARD[0], "id": "only-on-server"}])
    assert run(server, "push", str(before), cwd=tmp_path).returncode == 0
    after = [{**AWKWARD[1], "name": "renamed"}, AWKWARD[2], {**AWKWARD[2], "id": "new"}]
    source = tmp_path / "after.csv"
    write_file(source, after)
    with server.client() as client:
        held = all_deals(client)

    dry = run(server, "push", "--mirror", "--dry-run", str(source), cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert sorted(dry.stdout.splitlines()) == sorted(
        [
            '+ "new"',
            f'~ "{AWKWARD[1]["id"]}"',
            '- "comma,quote\\"newline\\nsemicolon;"',
            '- "only-on-server"',
        ]
    )
    assert "would add 1 deal, change 1 deal and delete 2 deals, and leave 1 deal unchanged" in (
        dry.stderr
    )
    with server.client() as client:
        assert all_deals(client) == held

    mirrored = run(server, "push", "--mirror", str(source), cwd=tmp_path)
    assert mirrored.returncode == 0, mirrored.stderr
    assert "Pushed 2 deals" in mirrored.stderr
    assert "Deleted 2 deals" in mirrored.stderr
    with server.client() as client:
        assert all_deals(client) == expected(after)


def test_a_key_is_required(tmp_path: Path) -> None:
    source = tmp_path / "export.jsonl"
    write_file(source, AWKWARD)
    result = run_crmdeals("push", str(source), cwd=tmp_path)
    assert_mistake(result, "--key", "CRMDEALS_API_KEY")


def test_counts_are_said_in_the_singular_and_the_plural(
    server: ServerProcess, tmp_path: Path
) -> None:
    one = tmp_path / "one.csv"
    write_file(one, AWKWARD[:1])
    pushed = run(server, "push", str(one), cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    assert "Pushed 1 deal in" in pushed.stderr
    assert "1 request," in pushed.stderr
    assert "0 retries" in pushed.stderr
    pulled = run(server, "pull", cwd=tmp_path)
    assert "Pulled 1 deal." in pulled.stderr

    two = tmp_path / "two.jsonl"
    two.write_text(json.dumps(AWKWARD[2]) + "\n{not json\n", encoding="utf-8")
    pushed = run(server, "push", "--mirror", str(two), cwd=tmp_path)
    assert pushed.returncode == 1
    assert "1 invalid row was not sent." in pushed.stderr
    assert "Deleted 1 deal not in the file." in pushed.stderr
    strict = run(server, "push", "--strict", str(two), cwd=tmp_path)
    assert "1 invalid row: nothing was sent" in strict.stderr
    dry = run(server, "push", "--mirror", "--dry-run", str(one), cwd=tmp_path)
    assert "would add 1 deal, change 0 deals and delete 1 deal, and leave 0 deals" in dry.stderr

    write_file(tmp_path / "three.csv", AWKWARD)
    pushed = run(server, "push", str(tmp_path / "three.csv"), cwd=tmp_path)
    assert "Pushed 3 deals in" in pushed.stderr
    assert "Pulled 3 deals." in run(server, "pull", cwd=tmp_path).stderr


def test_the_readme_push_example_prints_what_the_readme_says(
    server: ServerProcess, tmp_path: Path
) -> None:
    script, expected_output = push_example()
    assert len(expected_output) == 3
    clone = tmp_path / "clone"  # where the README's reader runs it
    clone.mkdir()
    script = script.replace(DOCUMENTED_URL, server.url).replace(
        "$PWD/.venv/bin/", f"{Path(sys.executable).parent}/"
    )
    result = subprocess.run(
        ["/bin/bash", "-euo", "pipefail", "-c", script],
        cwd=clone,
        env={**os.environ, "KEY": server.key},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected_output
    assert list(clone.iterdir()) == []  # its files went to a temporary folder
