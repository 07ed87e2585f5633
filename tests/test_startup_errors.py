"""The first minute of a new user: every start-up mistake (a wrong setting, a database that
cannot be reached or written, a port out of range or taken) is one or two lines naming the
setting, option or address, with exit status 2 and no traceback; ``--debug`` (or
``CRMDEALS_LOG_LEVEL=debug``) brings the traceback back. Commands that only read never make
a database. Every command runs as a subprocess of the installed ``crmdeals``; none of these
starts a server: each mistake stops it before it listens."""

import contextlib
import socket
import sqlite3
from pathlib import Path

import pytest

from crmdeals.testing import free_port
from tests.command import assert_mistake, output, run_crmdeals

ADMIN_COMMANDS = [
    ["serve"],
    ["accounts", "list"],
    ["accounts", "create", "acme"],
    ["keys", "list"],
    ["keys", "create", "acme"],
    ["keys", "revoke", "abcdef01"],
    ["db", "upgrade"],
    ["panel-link", "--account", "a", "--user", "u", "--contact", "c"],
]
READING_COMMANDS = [
    ["accounts", "list"],
    ["keys", "list"],
    ["keys", "create", "acme"],
    ["keys", "revoke", "abcdef01"],
    ["panel-link", "--account", "a", "--user", "u", "--contact", "c"],
]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CRMDEALS_RATE_LIMIT", "abc"),
        ("CRMDEALS_DB_TIMEOUT", "soon"),
        ("CRMDEALS_DATABASE_URL", "mysql://u@h/db"),
        ("CRMDEALS_DATABASE_URL", "postgresql+foo://u@h/db"),
        ("CRMDEALS_LOG_LEVEL", "verbose"),
    ],
)
def test_a_wrong_setting_is_named_in_two_lines(tmp_path: Path, variable: str, value: str) -> None:
    result = run_crmdeals("serve", cwd=tmp_path, env={variable: value})
    assert_mistake(result, variable)
    assert list(tmp_path.iterdir()) == [], "nothing is made when a setting is wrong"


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=" ".join)
def test_every_command_names_a_wrong_setting(tmp_path: Path, command: list[str]) -> None:
    result = run_crmdeals(*command, cwd=tmp_path, env={"CRMDEALS_RATE_LIMIT": "abc"})
    assert_mistake(result, "CRMDEALS_RATE_LIMIT", "500/5s")
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_secret_is_named_but_never_shown(tmp_path: Path) -> None:
    secret = "hunter2-too-short"
    result = run_crmdeals("serve", cwd=tmp_path, env={"CRMDEALS_SECRET_KEY": secret})
    assert_mistake(result, "CRMDEALS_SECRET_KEY")
    assert secret not in output(result)


@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"], ["accounts", "create", "a"]])
def test_an_unreachable_postgresql_is_named_without_its_password(
    tmp_path: Path, command: list[str]
) -> None:
    port = free_port()  # nothing listens there: the machine's PostgreSQL is left alone
    url = f"postgresql://postgres:hunter2@127.0.0.1:{port}/test"
    result = run_crmdeals(*command, cwd=tmp_path, env={"CRMDEALS_DATABASE_URL": url})
    assert_mistake(result, "CRMDEALS_DATABASE_URL", f"127.0.0.1:{port}", "refused")
    assert "hunter2" not in output(result)


@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"], ["accounts", "create", "a"]])
def test_a_sqlite_file_in_a_missing_folder_is_named_with_the_folder(
    tmp_path: Path, command: list[str]
) -> None:
    folder = tmp_path / "missing"
    url = f"sqlite:///{folder / 'crmdeals.db'}"
    result = run_crmdeals(*command, cwd=tmp_path, env={"CRMDEALS_DATABASE_URL": url})
    assert_mistake(result, "CRMDEALS_DATABASE_URL", f"the folder {folder} does not exist")


def test_a_sqlite_file_where_nothing_can_be_written_is_named(tmp_path: Path) -> None:
    # /proc takes no new files, even from root (who passes any permission bits).
    url = "sqlite:////proc/crmdeals-test.db"
    result = run_crmdeals("serve", cwd=tmp_path, env={"CRMDEALS_DATABASE_URL": url})
    assert_mistake(result, "CRMDEALS_DATABASE_URL", "/proc/crmdeals-test.db")


def test_a_sqlite_file_below_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a folder")
    url = f"sqlite:///{tmp_path / 'notes.txt' / 'crmdeals.db'}"
    result = run_crmdeals("db", "upgrade", cwd=tmp_path, env={"CRMDEALS_DATABASE_URL": url})
    assert_mistake(result, "CRMDEALS_DATABASE_URL", "is a file, not a folder")


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_a_port_out_of_range_is_refused_before_anything_listens(tmp_path: Path, port: str) -> None:
    result = run_crmdeals("serve", "--port", port, cwd=tmp_path)
    # typer's own box for an invalid option: a few lines, naming the option and its variable
    assert_mistake(result, "--port", "CRMDEALS_PORT", "0<=x<=65535", lines=6)
    assert list(tmp_path.iterdir()) == []


def test_a_port_out_of_range_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    result = run_crmdeals("serve", cwd=tmp_path, env={"CRMDEALS_PORT": "70000"})
    assert_mistake(result, "CRMDEALS_PORT", lines=6)


def test_a_taken_port_is_named_with_its_address(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_crmdeals("serve", "--port", str(port), cwd=tmp_path)
    assert_mistake(result, f"127.0.0.1:{port}", "taken", "--port")
    assert list(tmp_path.iterdir()) == [], "no database is made for a server that cannot listen"


def test_a_host_that_is_not_this_machine_is_named(tmp_path: Path) -> None:
    result = run_crmdeals("serve", "--host", "192.0.2.1", "--port", "8000", cwd=tmp_path)
    assert_mistake(result, "192.0.2.1", "--host")


def test_sandbox_mode_with_several_workers_is_named(tmp_path: Path) -> None:
    result = run_crmdeals("serve", "--sandbox", "--workers", "2", cwd=tmp_path)
    assert_mistake(result, "--sandbox", "--workers")


@pytest.mark.parametrize(
    ("arguments", "env"),
    [
        (["--debug", "accounts", "list"], {}),
        (["accounts", "list"], {"CRMDEALS_LOG_LEVEL": "debug"}),
    ],
)
def test_debug_shows_the_traceback(
    tmp_path: Path, arguments: list[str], env: dict[str, str]
) -> None:
    result = run_crmdeals(*arguments, cwd=tmp_path, env={"CRMDEALS_RATE_LIMIT": "abc", **env})
    assert result.returncode != 0
    assert "Traceback" in output(result)


@pytest.mark.parametrize("command", READING_COMMANDS, ids=" ".join)
def test_commands_that_read_never_make_a_database(tmp_path: Path, command: list[str]) -> None:
    result = run_crmdeals(*command, cwd=tmp_path)
    assert_mistake(result, "No database at ./crmdeals.db", "CRMDEALS_DATABASE_URL", "db upgrade")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", READING_COMMANDS, ids=" ".join)
def test_commands_that_read_never_make_tables(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "crmdeals.db").touch()  # a file, but not a crmdeals database (yet)
    result = run_crmdeals(*command, cwd=tmp_path)
    assert_mistake(result, "no crmdeals tables", "CRMDEALS_DATABASE_URL", "db upgrade")
    with contextlib.closing(sqlite3.connect(tmp_path / "crmdeals.db")) as database:
        assert database.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_db_upgrade_makes_the_database_the_reading_commands_then_read(tmp_path: Path) -> None:
    assert run_crmdeals("db", "upgrade", cwd=tmp_path).returncode == 0
    listed = run_crmdeals("accounts", "list", cwd=tmp_path)
    assert listed.returncode == 0, output(listed)
