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
