"""The ``crmdeals`` command (accounts, keys, db) and the bootstrap rule, on real SQLite files."""

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from crmdeals.accounts import PREFIX_LENGTH, bootstrap
from crmdeals.app import create_app
from crmdeals.cli import app
from crmdeals.settings import Settings
from crmdeals.storage import Store, connect, upgrade
from crmdeals.testing import free_port
from tests.command import assert_mistake, output, run_crmdeals

KEY = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # no stray `.env` file is read
    return f"sqlite:///{tmp_path / 'crmdeals.db'}"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def crmdeals(runner: CliRunner, database_url: str, *args: str) -> Result:
    """Run ``crmdeals ARGS`` on the database, with no other ``CRMDEALS_*`` setting."""
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("CRMDEALS_")}
    env.update(CRMDEALS_DATABASE_URL=database_url, COLUMNS="200")
    return runner.invoke(app, list(args), env=env)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def created_key(result: Result) -> str:
    """The key a `create` command printed: the only thing on its stdout."""
    ok(result)
    assert KEY.fullmatch(result.stdout.strip()), repr(result.stdout)
    assert result.stdout == result.stdout.strip() + "\n", repr(result.stdout)
    return result.stdout.strip()


@pytest.fixture
def api(database_url: str) -> Iterator[TestClient]:
    """The server on the same database (which the CLI migrates)."""
    with TestClient(create_app(Settings(database_url=database_url, rate_limit="off"))) as client:
        yield client


def status_with(client: TestClient, key: str) -> int:
    """The status of ``GET /v3/deals`` with ``key``."""
    status: int = client.get("/v3/deals", headers={"Authorization": f"Bearer {key}"}).status_code
    return status


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    engine = connect(database_url)
    upgrade(engine)
    yield Store(engine)
    engine.dispose()


# -- accounts ------------------------------------------------------------------------------


def test_accounts_create_prints_a_key_that_authenticates(
    runner: CliRunner, database_url: str
) -> None:
    key = created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    with TestClient(create_app(Settings(database_url=database_url, rate_limit="off"))) as client:
        assert status_with(client, key) == 200
        assert status_with(client, "f" * 32) == 401


def test_each_created_key_is_different(runner: CliRunner, database_url: str) -> None:
    first = created_key(crmdeals(runner, database_url, "accounts", "create", "one"))
    second = created_key(crmdeals(runner, database_url, "accounts", "create", "two"))
    assert first != second


def test_accounts_are_tenants_their_keys_see_only_their_deals(
    runner: CliRunner, database_url: str
) -> None:
    key_a = created_key(crmdeals(runner, database_url, "accounts", "create", "a"))
    key_b = created_key(crmdeals(runner, database_url, "accounts", "create", "b"))
    deal = {"id": "1", "responsibleUserId": "u", "name": "n", "contacts": ["c"], "closed": False}
    with TestClient(create_app(Settings(database_url=database_url, rate_limit="off"))) as client:
        posted = client.post("/v3/deals", json=[deal], headers={"Authorization": f"Bearer {key_a}"})
        assert posted.status_code == 200
        assert client.get("/v3/deals/1", headers={"Authorization": f"Bearer {key_a}"}).is_success
        other = client.get("/v3/deals/1", headers={"Authorization": f"Bearer {key_b}"})
        assert other.status_code == 404


def test_creating_an_account_name_twice_fails(runner: CliRunner, database_url: str) -> None:
    created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    again = crmdeals(runner, database_url, "accounts", "create", "acme")
    assert again.exit_code != 0
    assert again.stdout == "", "no key may be printed when nothing was created"
    assert "acme" in again.stderr
    listed = ok(crmdeals(runner, database_url, "accounts", "list")).stdout
    assert listed.count("acme") == 1


def test_accounts_list_shows_every_account(runner: CliRunner, database_url: str) -> None:
    for name in ("north", "south"):
        created_key(crmdeals(runner, database_url, "accounts", "create", name))
    listed = ok(crmdeals(runner, database_url, "accounts", "list")).stdout
    assert "north" in listed
    assert "south" in listed
    assert listed.index("north") < listed.index("south")


def test_accounts_list_never_shows_a_key(runner: CliRunner, database_url: str) -> None:
    key = created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    listed = ok(crmdeals(runner, database_url, "accounts", "list")).stdout
    assert key[:PREFIX_LENGTH] not in listed


# -- keys ----------------------------------------------------------------------------------


def test_keys_create_gives_a_second_working_key(
    runner: CliRunner, database_url: str, api: TestClient
) -> None:
    first = created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    second = created_key(crmdeals(runner, database_url, "keys", "create", "acme"))
    assert second != first
    assert status_with(api, first) == 200
    assert status_with(api, second) == 200


def test_keys_of_one_account_share_its_deals(
    runner: CliRunner, database_url: str, api: TestClient
) -> None:
    first = created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    second = created_key(crmdeals(runner, database_url, "keys", "create", "acme"))
    deal = {"id": "1", "responsibleUserId": "u", "name": "n", "contacts": ["c"], "closed": True}
    posted = api.post("/v3/deals", json=[deal], headers={"Authorization": f"Bearer {first}"})
    assert posted.status_code == 200
    got = api.get("/v3/deals/1", headers={"Authorization": f"Bearer {second}"})
    assert got.status_code == 200
    assert got.json()["closed"] is True


def test_keys_create_for_an_unknown_account_fails(runner: CliRunner, database_url: str) -> None:
    ok(crmdeals(runner, database_url, "db", "upgrade"))
    result = crmdeals(runner, database_url, "keys", "create", "nobody")
    assert result.exit_code != 0
    assert result.stdout == ""
    assert "nobody" in result.stderr


def test_keys_list_shows_prefixes_and_never_the_keys(runner: CliRunner, database_url: str) -> None:
    first = created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    second = created_key(crmdeals(runner, database_url, "keys", "create", "acme"))
    result = ok(crmdeals(runner, database_url, "keys", "list"))
    for key in (first, second):
        assert key[:PREFIX_LENGTH] in result.stdout
        assert key[: PREFIX_LENGTH + 1] not in result.stdout, "more than the prefix is shown"
        assert key not in result.output
    assert "acme" in result.stdout


def test_keys_revoke_stops_that_key_at_once_and_only_that_key(
    runner: CliRunner, database_url: str, api: TestClient
) -> None:
    first = created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    second = created_key(crmdeals(runner, database_url, "keys", "create", "acme"))
    assert status_with(api, first) == 200  # the running server has seen the key

    ok(crmdeals(runner, database_url, "keys", "revoke", first[:PREFIX_LENGTH]))

    assert status_with(api, first) == 401
    assert status_with(api, second) == 200
    listed = ok(crmdeals(runner, database_url, "keys", "list")).stdout
    [revoked_line] = [line for line in listed.splitlines() if first[:PREFIX_LENGTH] in line]
    [live_line] = [line for line in listed.splitlines() if second[:PREFIX_LENGTH] in line]
    assert re.search(r"\d{4}-\d{2}-\d{2}.*\d{4}-\d{2}-\d{2}", revoked_line), revoked_line
    assert not re.search(r"\d{4}-\d{2}-\d{2}.*\d{4}-\d{2}-\d{2}", live_line), live_line


def test_revoking_a_revoked_key_again_fails(runner: CliRunner, database_url: str) -> None:
    key = created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    ok(crmdeals(runner, database_url, "keys", "revoke", key[:PREFIX_LENGTH]))
    assert crmdeals(runner, database_url, "keys", "revoke", key[:PREFIX_LENGTH]).exit_code != 0


def test_revoking_an_unknown_prefix_fails(
    runner: CliRunner, database_url: str, api: TestClient
) -> None:
    key = created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    unknown = "0" * PREFIX_LENGTH if key[:PREFIX_LENGTH] != "0" * PREFIX_LENGTH else "1" * 8
    result = crmdeals(runner, database_url, "keys", "revoke", unknown)
    assert result.exit_code != 0
    assert unknown in result.stderr
    assert status_with(api, key) == 200


def test_revoking_a_prefix_shared_by_two_live_keys_fails_and_revokes_neither(
    runner: CliRunner, database_url: str, store: Store, api: TestClient
) -> None:
    first, second = "abcdef01" + "1" * 24, "abcdef01" + "2" * 24
    assert bootstrap(store, first) is not None
    assert bootstrap(store, second) is not None
    result = crmdeals(runner, database_url, "keys", "revoke", "abcdef01")
    assert result.exit_code != 0
    assert status_with(api, first) == 200
    assert status_with(api, second) == 200


# -- db ------------------------------------------------------------------------------------


def test_db_upgrade_creates_the_tables_and_can_run_twice(
    runner: CliRunner, database_url: str, tmp_path: Path
) -> None:
    database = tmp_path / "crmdeals.db"
    assert not database.exists()
    ok(crmdeals(runner, database_url, "db", "upgrade"))
    ok(crmdeals(runner, database_url, "db", "upgrade"))
    engine = sa.create_engine(database_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        with engine.connect() as connection:
            versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert len(versions.all()) == 1
    finally:
        engine.dispose()
    assert {"accounts", "api_keys", "deals", "alembic_version"} <= tables


def test_db_upgrade_keeps_existing_data(runner: CliRunner, database_url: str) -> None:
    created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    ok(crmdeals(runner, database_url, "db", "upgrade"))
    assert "acme" in ok(crmdeals(runner, database_url, "accounts", "list")).stdout


# -- bootstrap -----------------------------------------------------------------------------


def test_bootstrap_of_an_empty_database_makes_a_default_account_with_a_random_key(
    store: Store, api: TestClient
) -> None:
    message = bootstrap(store, None)
    assert message is not None
    keys = KEY.findall(message)
    assert len(keys) == 1, message
    [key] = keys
    assert [account.name for account in store.list_accounts()] == ["default"]
    assert status_with(api, key) == 200


def test_bootstrap_makes_a_different_random_key_for_each_database(tmp_path: Path) -> None:
    keys = []
    for name in ("one.db", "two.db"):
        engine = connect(f"sqlite:///{tmp_path / name}")
        try:
            upgrade(engine)
            message = bootstrap(Store(engine), None)
        finally:
            engine.dispose()
        assert message is not None
        keys += KEY.findall(message)
    assert len(keys) == 2
    assert keys[0] != keys[1]


def test_bootstrap_runs_once(store: Store) -> None:
    assert bootstrap(store, None) is not None
    assert bootstrap(store, None) is None
    assert len(store.list_accounts()) == 1
    assert len(store.list_keys()) == 1


def test_bootstrap_leaves_a_database_with_accounts_alone(
    runner: CliRunner, database_url: str, store: Store
) -> None:
    created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    assert bootstrap(store, None) is None
    assert [account.name for account in store.list_accounts()] == ["acme"]


def test_bootstrap_with_a_known_key_registers_it_once(store: Store, api: TestClient) -> None:
    known = "0123456789abcdef" * 2
    message = bootstrap(store, known)
    assert message is not None
    assert known not in message, "the operator knows the key; it must not be echoed"
    assert bootstrap(store, known) is None
    assert [account.name for account in store.list_accounts()] == ["default"]
    assert [key.prefix for key in store.list_keys()] == [known[:PREFIX_LENGTH]]
    assert status_with(api, known) == 200


def test_bootstrap_with_a_known_key_joins_an_existing_database(
    runner: CliRunner, database_url: str, store: Store, api: TestClient
) -> None:
    acme_key = created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    known = "fedcba9876543210" * 2
    assert bootstrap(store, known) is not None
    assert sorted(account.name for account in store.list_accounts()) == ["acme", "default"]
    assert status_with(api, known) == 200
    assert status_with(api, acme_key) == 200


def test_bootstrap_does_not_bring_a_revoked_known_key_back(
    runner: CliRunner, database_url: str, store: Store, api: TestClient
) -> None:
    known = "0123456789abcdef" * 2
    assert bootstrap(store, known) is not None
    ok(crmdeals(runner, database_url, "keys", "revoke", known[:PREFIX_LENGTH]))
    assert bootstrap(store, known) is None
    assert status_with(api, known) == 401


# -- panel links ---------------------------------------------------------------------------


def test_panel_link_prints_a_url_that_the_server_opens(
    runner: CliRunner, database_url: str, api: TestClient
) -> None:
    key = created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    deal = {"id": "1", "responsibleUserId": "rep", "name": "Renewal", "contacts": ["c"]}
    headers = {"Authorization": f"Bearer {key}"}
    assert api.post("/v3/deals", json=[{**deal, "closed": False}], headers=headers).is_success
    result = ok(
        crmdeals(
            runner,
            database_url,
            "panel-link",
            "--account",
            "acme",
            "--user",
            "rep",
            "--contact",
            "c",
            "--base-url",
            "http://testserver",
        )
    )
    url = result.stdout.strip()
    assert url.startswith("http://testserver/panel?token=")
    page = api.get(url)
    assert page.status_code == 200
    assert "Renewal" in page.text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--account", "nobody", "--user", "u", "--contact", "c"], "No account named"),
        (["--account", "acme", "--user", "", "--contact", "c"], "--user"),
        (["--account", "acme", "--user", "u", "--contact", "c" * 101], "--contact"),
        (["--account", "acme", "--user", "u", "--contact", "c", "--ttl", "59"], "--ttl"),
    ],
)
def test_panel_link_refuses_what_it_cannot_sign(
    runner: CliRunner, database_url: str, arguments: list[str], message: str
) -> None:
    created_key(crmdeals(runner, database_url, "accounts", "create", "acme"))
    result = crmdeals(runner, database_url, "panel-link", *arguments)
    assert result.exit_code != 0
    assert message in result.output
    assert result.stdout.strip() == "" or "panel?token" not in result.stdout


# -- as a user runs it: the installed script, in a directory of its own ---------------------


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory with a migrated database (./crmdeals.db)."""
    directory = tmp_path / "work"
    directory.mkdir()
    assert run_crmdeals("db", "upgrade", cwd=directory).returncode == 0
    return directory


def created(workdir: Path, *arguments: str) -> str:
    result = run_crmdeals(*arguments, cwd=workdir)
    assert result.returncode == 0, output(result)
    assert KEY.fullmatch(result.stdout.strip()), result.stdout
    return result.stdout.strip()


def live_prefixes(workdir: Path) -> list[str]:
    """The prefixes of the keys that `keys list` shows without a revocation date."""
    listed = run_crmdeals("keys", "list", cwd=workdir)
    assert listed.returncode == 0, output(listed)
    dated = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")
    return [
        match.group(1)
        for line in listed.stdout.splitlines()
        if (match := re.search(r"\b([0-9a-f]{8})\b", line)) and len(dated.findall(line)) == 1
    ]


def key_ids(workdir: Path) -> list[tuple[str, str]]:
    """The id and prefix of every key, as `keys list` shows them."""
    listed = run_crmdeals("keys", "list", cwd=workdir).stdout
    return re.findall(r"(\d+)\s*│\s*([0-9a-f]{8})\b", listed)


def test_keys_revoke_takes_the_whole_key(workdir: Path) -> None:
    key = created(workdir, "accounts", "create", "acme")
    other = created(workdir, "keys", "create", "acme")
    result = run_crmdeals("keys", "revoke", key, cwd=workdir)
    assert result.returncode == 0, output(result)
    assert live_prefixes(workdir) == [other[:PREFIX_LENGTH]]


@pytest.mark.parametrize("length", [4, 6, PREFIX_LENGTH])
def test_keys_revoke_takes_a_prefix_of_4_to_8_characters(workdir: Path, length: int) -> None:
    key = created(workdir, "accounts", "create", "acme")
    result = run_crmdeals("keys", "revoke", key[:length], cwd=workdir)
    assert result.returncode == 0, output(result)
    assert live_prefixes(workdir) == []


def test_keys_revoke_takes_the_id_that_keys_list_shows(workdir: Path) -> None:
    key = created(workdir, "accounts", "create", "acme")
    other = created(workdir, "keys", "create", "acme")
    [key_id] = [key_id for key_id, prefix in key_ids(workdir) if prefix == key[:PREFIX_LENGTH]]
    result = run_crmdeals("keys", "revoke", key_id, cwd=workdir)
    assert result.returncode == 0, output(result)
    assert live_prefixes(workdir) == [other[:PREFIX_LENGTH]]


def test_keys_revoke_refuses_a_prefix_longer_than_what_is_stored(workdir: Path) -> None:
    key = created(workdir, "accounts", "create", "acme")
    result = run_crmdeals("keys", "revoke", key[: PREFIX_LENGTH + 2], cwd=workdir)
    assert result.returncode != 0
    assert f"first {PREFIX_LENGTH} characters" in result.stderr
    assert "Traceback" not in output(result)
    assert live_prefixes(workdir) == [key[:PREFIX_LENGTH]]


def test_an_ambiguous_prefix_lists_the_candidates_and_revokes_nothing(workdir: Path) -> None:
    first, second = "abcdef01" + "1" * 24, "abcdef01" + "2" * 24
    engine = connect(f"sqlite:///{workdir / 'crmdeals.db'}")
    try:
        assert bootstrap(Store(engine), first) is not None
        assert bootstrap(Store(engine), second) is not None
    finally:
        engine.dispose()
    [(first_id, _), (second_id, _)] = key_ids(workdir)
    for given in ("abcdef01", "abcd"):
        result = run_crmdeals("keys", "revoke", given, cwd=workdir)
        assert result.returncode == 1, output(result)
        assert "could mean 2 keys" in result.stderr
        candidates = re.findall(
            r"^\s*(\d+)\s+abcdef01\s+default\s+\d{4}-\d{2}-\d{2}", result.stderr, re.MULTILINE
        )
        assert candidates == [first_id, second_id], result.stderr
        assert live_prefixes(workdir) == ["abcdef01", "abcdef01"]
    # the id names one of them; then the prefix names the other (a revoked key is no rival)
    assert run_crmdeals("keys", "revoke", second_id, cwd=workdir).returncode == 0
    assert live_prefixes(workdir) == ["abcdef01"]
    result = run_crmdeals("keys", "revoke", "abcdef01", cwd=workdir)
    assert result.returncode == 0, output(result)
    assert f"id {first_id}" in result.stderr
    assert live_prefixes(workdir) == []


# -- help ----------------------------------------------------------------------------------

HELP_PAGES = [
    [],
    ["serve"],
    ["push"],
    ["pull"],
    ["panel-link"],
    ["accounts", "create"],
    ["keys", "revoke"],
    ["db", "upgrade"],
]


@pytest.mark.parametrize("command", HELP_PAGES, ids=lambda command: " ".join(command) or "crmdeals")
def test_help_shows_no_type_after_a_flag_and_no_braces_around_arguments(
    tmp_path: Path, command: list[str]
) -> None:
    result = run_crmdeals(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    assert "<bool>" not in result.stdout
    assert not re.search(r"\{\w+\}", result.stdout), result.stdout
    assert not re.search(r"--help\s+\S*bool", result.stdout, re.IGNORECASE), result.stdout


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["serve"], ["CRMDEALS_HOST", "CRMDEALS_PORT", "CRMDEALS_WORKERS", "CRMDEALS_SANDBOX"]),
        (["serve"], ["default: 127.0.0.1", "default: 8000"]),
        (["push"], ["CRMDEALS_URL", "CRMDEALS_API_KEY", "default: http://127.0.0.1:8000"]),
        (["push"], ["Usage: crmdeals push [OPTIONS] FILE", "default: 500/5s", "default: 8"]),
        (["pull"], ["CRMDEALS_URL", "CRMDEALS_API_KEY", "default: http://127.0.0.1:8000"]),
        (["panel-link"], ["CRMDEALS_URL", "default: http://127.0.0.1:8000", "default: 3600"]),
    ],
)
def test_help_shows_each_options_default_and_variable(
    tmp_path: Path, command: list[str], shown: list[str]
) -> None:
    result = run_crmdeals(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    for text in shown:
        assert text in result.stdout, (text, result.stdout)


# -- push and pull: mistakes said once, at once ---------------------------------------------


def deal_file(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", [["push", "deals.csv"], ["pull"]])
def test_nothing_listening_names_the_url_and_the_reason(tmp_path: Path, command: list[str]) -> None:
    deal_file(tmp_path, "deals.csv", "id,responsibleUserId,name,contacts,closed\n1,u,n,c,false\n")
    url = f"http://127.0.0.1:{free_port()}"
    result = run_crmdeals(*command, "--url", url, "--key", "k" * 32, cwd=tmp_path, timeout=20)
    assert_mistake(result, url, "connection refused", "--url")
    assert "ConnectError" not in output(result)


@pytest.mark.parametrize("command", [["push", "deals.csv"], ["pull"]])
@pytest.mark.parametrize("url", ["127.0.0.1:8000", "localhost:8000", "ftp://127.0.0.1"])
def test_a_url_without_http_is_refused_at_once(
    tmp_path: Path, command: list[str], url: str
) -> None:
    deal_file(tmp_path, "deals.csv", "id,responsibleUserId,name,contacts,closed\n1,u,n,c,false\n")
    result = run_crmdeals(*command, "--url", url, "--key", "k" * 32, cwd=tmp_path, timeout=20)
    assert_mistake(result, url, "--url", "http://")


SERVER_MODULES = (
    *("sqlalchemy", "alembic", "uvicorn", "fastapi", "starlette", "pydantic", "asyncpg", "psycopg"),
    *("crmdeals.settings", "crmdeals.storage", "crmdeals.app", "crmdeals.api"),
)
"""Packages (and crmdeals' modules) of the server that a push does without."""


def test_a_push_loads_none_of_the_servers_modules(tmp_path: Path) -> None:
    """``crmdeals push`` starts without the server's settings, database, uvicorn or FastAPI
    (two thirds of the command's start before): a push that went as far as its first
    request (refused: nothing listens) loaded none of them (Python's import log, on
    stderr with ``PYTHONPROFILEIMPORTTIME``, names every module the command loaded)."""
    deal_file(tmp_path, "deals.csv", "id,responsibleUserId,name,contacts,closed\n1,u,n,c,false\n")
    url = f"http://127.0.0.1:{free_port()}"
    result = run_crmdeals(
        *("push", "deals.csv", "--url", url, "--key", "k" * 32),
        cwd=tmp_path,
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    assert result.returncode == 2, output(result)
    assert f"Could not reach the server at {url}" in result.stderr
    imported = [
        line.rpartition("|")[2].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    ]
    assert "crmdeals.cli" in imported  # the log is there
    assert [module for module in imported if module.startswith(SERVER_MODULES)] == []


def test_push_and_pull_default_to_the_local_server(tmp_path: Path) -> None:
    result = run_crmdeals("pull", "--key", "k" * 32, cwd=tmp_path, timeout=20)
    # whether or not a server runs on the machine's port 8000, it is the one named
    assert "http://127.0.0.1:8000" in output(result)


@pytest.mark.parametrize(
    ("header", "said"),
    [
        ("id,responsibleUserId,name,contacts", "missing the column closed"),
        ("id,name,closed", "missing the columns responsibleUserId, contacts"),
        ("id;responsibleUserId;name;contacts;closed", "separated by ';'"),
        ("ID,ResponsibleUserId,name,contacts,closed", "'ID' for 'id'"),
    ],
)
def test_a_header_problem_is_said_once_not_for_every_row(
    tmp_path: Path, header: str, said: str
) -> None:
    rows = "".join(f"{n};{n},u,n,c,false\n" for n in range(5))
    deal_file(tmp_path, "deals.csv", header + "\n" + rows)
    url = f"http://127.0.0.1:{free_port()}"  # never asked: the file is refused first
    result = run_crmdeals("push", "deals.csv", "--url", url, "--key", "k" * 32, cwd=tmp_path)
    assert result.returncode == 1, output(result)
    assert output(result).count(said) == 1, output(result)
    assert "line 1" in result.stderr
    assert not re.search(r"line [2-9]", result.stderr), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("name", ["deals.csv", "deals.json", "deals.jsonl"])
@pytest.mark.parametrize("text", ["", "\n \n"])
def test_an_empty_file_says_so(tmp_path: Path, name: str, text: str) -> None:
    deal_file(tmp_path, name, text)
    url = f"http://127.0.0.1:{free_port()}"
    result = run_crmdeals("push", name, "--url", url, "--key", "k" * 32, "--mirror", cwd=tmp_path)
    assert result.returncode == 1, output(result)
    assert f"{name} is empty" in result.stderr
    assert "Traceback" not in output(result)


@pytest.mark.parametrize(
    ("name", "header", "said"),
    [
        ("users.csv", "id,nom,phone", "missing the column name"),
        ("contacts.csv", "id,responsibleUserId,name,uri", "missing the column contactData"),
        ("pipelines.csv", "ID,name,stages", "'ID' for 'id'"),
        ("export.csv", "id,name,phone", "missing the columns responsibleUserId, contacts"),
    ],
)
def test_a_header_is_checked_against_the_entity_the_file_name_says(
    tmp_path: Path, name: str, header: str, said: str
) -> None:
    deal_file(tmp_path, name, header + "\n1,2,3,4\n")
    url = f"http://127.0.0.1:{free_port()}"  # never asked: the file is refused first
    result = run_crmdeals("push", name, "--url", url, "--key", "k" * 32, cwd=tmp_path)
    assert result.returncode == 1, output(result)
    assert output(result).count(said) == 1, output(result)
    assert "line 1 (the header)" in result.stderr


def test_the_entity_option_overrides_the_file_name(tmp_path: Path) -> None:
    deal_file(tmp_path, "deals.csv", "id,name,phone\nu1,Anna,\n")  # a file of users
    url = f"http://127.0.0.1:{free_port()}"
    args = ["push", "deals.csv", "--url", url, "--key", "k" * 32]
    assert "missing the columns" in output(run_crmdeals(*args, cwd=tmp_path))
    result = run_crmdeals(*args, "--entity", "users", cwd=tmp_path, timeout=20)
    assert_mistake(result, url, "connection refused")  # the file was fine: the server is asked


def test_more_than_100_pipelines_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    rows = "".join(f"p{n},Pipeline {n},\n" for n in range(101))
    deal_file(tmp_path, "pipelines.csv", "id,name,stages\n" + rows)
    deal_file(tmp_path, "users.csv", "id,name\nu1,Anna\n")
    url = f"http://127.0.0.1:{free_port()}"  # never asked
    result = run_crmdeals("push", "users.csv", "pipelines.csv", "--url", url, "--key", "k" * 32,
                          cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1, output(result)
    assert "101 pipelines" in result.stderr
    assert "at most 100; nothing was sent" in result.stderr
    assert "connection refused" not in output(result)


@pytest.mark.parametrize("name", ["users.jsonl", "Contacts.json", "pipeline.csv"])
def test_an_empty_file_of_another_entity_says_which(tmp_path: Path, name: str) -> None:
    deal_file(tmp_path, name, "")
    url = f"http://127.0.0.1:{free_port()}"
    result = run_crmdeals("push", name, "--url", url, "--key", "k" * 32, cwd=tmp_path)
    assert result.returncode == 1, output(result)
    entity = name.split(".", maxsplit=1)[0].lower().rstrip("s") + "s"
    assert f"{name} is empty: no {entity} to read" in result.stderr


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["push"], ["Usage: crmdeals push [OPTIONS] FILE...", "--entity", "pipelines always"]),
        (["pull"], ["--entity", "users, contacts, pipelines, deals"]),
    ],
)
def test_help_of_push_and_pull_names_the_entities(
    tmp_path: Path, command: list[str], shown: list[str]
) -> None:
    result = run_crmdeals(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, output(result)
    flat = " ".join(result.stdout.split())
    for text in shown:
        assert text in flat, (text, result.stdout)
