"""``crmdeals push`` and ``pull``, run as commands against a real server: files of every
format with awkward values go up and come back unchanged, invalid rows are reported by line,
``--strict``, ``--mirror`` and ``--dry-run`` do what they say, and the README's worked example
prints what the README says."""

import csv
import json
import os
import re
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
from tests.readme import DOCUMENTED_URL, README, push_example

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


# -- users, contacts and pipelines ------------------------------------------------------------

ENTITY_ROWS: dict[str, list[dict[str, Any]]] = {
    "users": [
        {"id": "rep; 1", "name": 'A "quoted", multi-line\nname', "phone": "79011112233"},
        {"id": "Ünïcödé", "name": "日本語 — ✓", "phone": None},
    ],
    "contacts": [
        {
            "id": 'c,"1"',
            "responsibleUserId": "rep; 1",
            "name": "Client, one",
            "uri": "https://crm.example.com/c/1?a=1&b=2",
            "contactData": [
                {"chatType": "whatsapp", "chatId": "79011112233"},
                {"chatType": "telegram", "username": "anna", "phone": "79011112234"},
            ],
        },
        {
            "id": "контакт",
            "responsibleUserId": "Ünïcödé",
            "name": "日本語\n二",
            "uri": None,
            "contactData": [{"chatType": "max", "chatId": "m;1"}],
        },
    ],
    "pipelines": [
        {
            "id": "sales",
            "name": 'Sales, "main"',
            "stages": [{"id": "new", "name": "New"}, {"id": "won;", "name": "Won\nfor good"}],
        },
        {"id": "empty", "name": "No stages", "stages": None},
    ],
    "deals": AWKWARD[:2],
}
"""A CRM export of every entity, with what CSV must quote in every field."""


def write_entity(path: Path, entity: str, rows: list[dict[str, Any]]) -> None:
    """``rows`` of ``entity`` as a CRM export would write them, in ``path``'s format."""
    if entity == "deals" or path.suffix != ".csv":
        write_file(path, rows)
        return
    columns = {
        "users": ["id", "name", "phone"],
        "contacts": ["id", "responsibleUserId", "name", "uri", "contactData"],
        "pipelines": ["id", "name", "stages"],
    }[entity]
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for row in rows:
            cells = []
            for column in columns:
                value = row.get(column)
                if isinstance(value, list):
                    value = json.dumps(value, ensure_ascii=False)
                cells.append("" if value is None else value)
            writer.writerow(cells)


def held(server: ServerProcess, entity: str) -> list[dict[str, Any]]:
    """What the server holds of ``entity``, over plain HTTP."""
    with server.client() as client:
        if entity == "deals":
            return all_deals(client)
        if entity == "contacts":
            items: list[dict[str, Any]] = []
            while True:
                page = client.get("/v3/contacts", params={"offset": len(items)}).json()
                items += page["data"]
                if len(page["data"]) < 100:
                    return items
        answer: list[dict[str, Any]] = client.get(f"/v3/{entity}").json()
        return answer


def held_after_upload(entity: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the server holds after an upload of ``rows``: normalised, in its order."""
    if entity == "deals":
        return expected(rows)
    if entity == "users":
        return sorted(
            ({"phone": None, **row} for row in rows), key=lambda row: (row["name"], row["id"])
        )
    if entity == "pipelines":
        return rows
    stored = [
        {
            **row,
            "contactData": [
                {"chatId": None, "username": None, "phone": None, **chat}
                for chat in row["contactData"]
            ],
        }
        for row in rows
    ]
    return sorted(stored, key=lambda row: row["id"].encode())


def posts(server: ServerProcess) -> list[str]:
    """The routes of the uploads the server answered, in order (from its access log)."""
    return [
        record["route"]
        for record in server.log_records()
        if record.get("method") == "POST" and record.get("message") == "request"
    ]


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
def test_every_entity_goes_up_in_one_command_and_comes_back_unchanged(
    server: ServerProcess, tmp_path: Path, suffix: str
) -> None:
    names = []
    for entity in reversed(ENTITY_ROWS):  # deals first on the command line
        write_entity(tmp_path / f"{entity}{suffix}", entity, ENTITY_ROWS[entity])
        names.append(f"{entity}{suffix}")
    pushed = run(server, "push", *names, cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    for entity, rows in ENTITY_ROWS.items():
        assert f"Pushed 2 {entity}" in pushed.stderr
        assert held(server, entity) == held_after_upload(entity, rows), entity
    assert posts(server) == ["/v3/users", "/v3/contacts", "/v3/pipelines", "/v3/deals"]

    pulled_dir, again_dir = tmp_path / "pulled", tmp_path / "again"
    pulled_dir.mkdir()
    again_dir.mkdir()
    for entity in ENTITY_ROWS:  # -o's name says which entity
        pulled = run(server, "pull", "-o", str(pulled_dir / f"{entity}{suffix}"), cwd=tmp_path)
        assert pulled.returncode == 0, pulled.stderr
        assert f"Pulled 2 {entity}." in pulled.stderr
    files = [str(pulled_dir / f"{entity}{suffix}") for entity in ENTITY_ROWS]
    again = run(server, "push", "--mirror", *files, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    for entity, rows in ENTITY_ROWS.items():
        assert held(server, entity) == held_after_upload(entity, rows), entity
    assert again.stderr.count("Pushed 0 ") == 3  # nothing changed: only pipelines are sent
    for entity in ENTITY_ROWS:
        path = again_dir / f"{entity}{suffix}"
        assert run(server, "pull", "-o", str(path), cwd=tmp_path).returncode == 0
        assert path.read_bytes() == (pulled_dir / path.name).read_bytes(), entity


def test_entity_option_names_what_files_hold_whatever_their_names(
    server: ServerProcess, tmp_path: Path
) -> None:
    export = tmp_path / "export.jsonl"
    write_entity(export, "users", ENTITY_ROWS["users"])
    pushed = run(server, "push", "--entity", "users", str(export), cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    assert held(server, "users") == held_after_upload("users", ENTITY_ROWS["users"])
    pulled = run(server, "pull", "--entity", "users", cwd=tmp_path)
    assert [json.loads(line) for line in pulled.stdout.splitlines()] == held(server, "users")
    assert "Pulled 2 users." in pulled.stderr
    as_deals = run(server, "pull", cwd=tmp_path)  # no -o, no --entity: deals
    assert (as_deals.stdout, "Pulled 0 deals." in as_deals.stderr) == ("", True)


def test_invalid_rows_of_every_entity_are_reported_with_file_and_line(
    server: ServerProcess, tmp_path: Path
) -> None:
    (tmp_path / "users.csv").write_text(
        "id,name,phone\nu1,Anna,79011112233\n,No id,\nu2,Bad phone dropped,+7 901\n",
        encoding="utf-8",
    )
    (tmp_path / "contacts.csv").write_text(
        "id,responsibleUserId,name,uri,contactData\n"
        'c1,u1,Fine,,"[{""chatType"":""vk"",""chatId"":""1""}]"\n'
        "c2,u1,Not JSON,,[{chatType\n"
        'c3,u1,Bad chat,,"[{""chatType"":""whatsapp"",""chatId"":""+7""}]"\n',
        encoding="utf-8",
    )
    (tmp_path / "pipelines.jsonl").write_text(
        '{"id": "p1", "name": "Fine"}\n{"id": "p2", "name": "Bad", "stages": []}\n',
        encoding="utf-8",
    )
    pushed = run(server, "push", "pipelines.jsonl", "contacts.csv", "users.csv", cwd=tmp_path)
    assert pushed.returncode == 1
    lines = [line for line in pushed.stderr.splitlines() if ", line " in line]
    assert [line.split(": ")[0:2] for line in lines] == [
        ["pipelines.jsonl, line 2", "stages"],
        ["contacts.csv, line 3", "contactData"],
        ["contacts.csv, line 4", "contactData[0].chatId"],
        ["users.csv, line 3", "id"],
    ]
    assert "not JSON" in lines[1]
    assert "4 invalid rows were not sent." in pushed.stderr
    assert [user["id"] for user in held(server, "users")] == ["u1", "u2"]
    assert held(server, "users")[1]["phone"] is None
    assert [contact["id"] for contact in held(server, "contacts")] == ["c1"]
    assert [pipeline["id"] for pipeline in held(server, "pipelines")] == ["p1"]

    strict = run(server, "push", "--strict", "--entity", "users", "users.csv", cwd=tmp_path)
    assert strict.returncode == 1
    assert "1 invalid row: nothing was sent (--strict)" in strict.stderr


def test_dry_run_names_each_entity_and_changes_nothing(
    server: ServerProcess, tmp_path: Path
) -> None:
    for entity, rows in ENTITY_ROWS.items():
        write_entity(tmp_path / f"{entity}.json", entity, rows)
    assert run(server, "push", *(f"{e}.json" for e in ENTITY_ROWS), cwd=tmp_path).returncode == 0
    before = {entity: held(server, entity) for entity in ENTITY_ROWS}
    users = [{**ENTITY_ROWS["users"][0], "phone": None}, {"id": "new", "name": "New"}]
    write_entity(tmp_path / "users.json", "users", users)
    write_entity(tmp_path / "pipelines.json", "pipelines", ENTITY_ROWS["pipelines"][:1])
    write_entity(tmp_path / "contacts.json", "contacts", ENTITY_ROWS["contacts"])

    dry = run(server, "push", "--dry-run", "users.json", "pipelines.json", "contacts.json",
              cwd=tmp_path)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        '+ user "new"',
        '~ user "rep; 1"',
        '- pipeline "empty"',  # pipelines: always mirrored
    ]
    assert "would add 1 user, change 1 user and delete 0 users, and leave 0 users" in dry.stderr
    assert "leave 2 contacts unchanged; nothing was sent" in dry.stderr
    assert "pipelines are always mirrored" in dry.stderr
    assert {entity: held(server, entity) for entity in ENTITY_ROWS} == before

    mirror = run(server, "push", "--dry-run", "--mirror", "users.json", cwd=tmp_path)
    assert mirror.stdout.splitlines() == ['+ user "new"', '~ user "rep; 1"', '- user "Ünïcödé"']

    pushed = run(server, "push", "--mirror", "users.json", "pipelines.json", cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    assert "Deleted 1 user not in the file. Pushed 2 users" in pushed.stderr
    assert "1 pipeline not in the file was removed" in pushed.stderr
    assert held(server, "users") == held_after_upload("users", users)
    assert held(server, "pipelines") == ENTITY_ROWS["pipelines"][:1]


def test_the_readme_entities_example_prints_what_the_readme_says(
    server: ServerProcess, tmp_path: Path
) -> None:
    text = README.read_text()
    section = text.split("<!-- push-entities-example -->")[1].split("<!-- /push-entities")[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    lines = block.splitlines()
    expected_output = [line.removeprefix("#=> ") for line in lines if line.startswith("#=>")]
    script = "\n".join(line for line in lines if not line.startswith("#=>"))
    script = script.replace("$PWD/.venv/bin/", f"{Path(sys.executable).parent}/")
    clone = tmp_path / "clone"
    clone.mkdir()
    result = subprocess.run(
        ["/bin/bash", "-euo", "pipefail", "-c", script],
        cwd=clone,
        env={**os.environ, "CRMDEALS_URL": server.url, "CRMDEALS_API_KEY": server.key},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected_output
    assert list(clone.iterdir()) == []
