"""The ``crmdeals`` command: serve, manage accounts and keys, migrate the database; push
files of deals, users, contacts and pipelines to a server and pull them back
(``crmdeals.transfer``); make panel links.

A mistake in a setting, an option or the surroundings (a database that cannot be reached, a
port that is taken) is a one- or two-line message naming the setting and what to do, and
exit status 2, never a traceback: the traceback is for ``crmdeals --debug`` (or
``CRMDEALS_LOG_LEVEL=debug``). ``_Commands.invoke`` is the one place that turns the errors
of every command into those messages. Exit status 1 is for work that was refused or only
partly done (an account that exists already, invalid rows of a file).

The server's modules (its settings, the database, uvicorn, Alembic) are imported by the
commands that use them, not here: ``push`` and ``pull`` start without them, in a third of
the time (``tests/test_cli.py`` checks which modules a push loads).
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from crmdeals import __version__, panel, signing, transfer
from crmdeals.client import DealsApiError, DealsClient, DealsConnectionError, DealsError
from crmdeals.client.async_client import check_url
from crmdeals.errors import ApiError
from crmdeals.fields import is_storable_id
from crmdeals.files import (
    ENTITIES,
    FORMATS,
    SINGULAR,
    Entity,
    FileError,
    Format,
    entity_of,
    format_of,
)
from crmdeals.limits import MAX_ENTITIES, parse_rate_limit
from crmdeals.signing import Signer
from crmdeals.transfer import counted

if TYPE_CHECKING:
    from pydantic import ValidationError

    from crmdeals.settings import Settings
    from crmdeals.storage import Store

DEFAULT_URL = "http://127.0.0.1:8000"
GRACEFUL_SHUTDOWN_SECONDS = 30
"""On SIGTERM or SIGINT: how long requests in flight may take to finish before the
connections are closed. No new connection is accepted meanwhile."""
_DEBUG = "crmdeals.debug"
_SECRET_SETTINGS = frozenset({"secret_key", "bootstrap_key"})
"""Settings whose wrong value is never repeated in a message."""

err = Console(stderr=True, soft_wrap=True, highlight=False)


class Mistake(Exception):
    """A setting, an option or the surroundings keep a command from running: the message
    (one or two lines) names which and what to do. Exit status 2."""


class _Commands(TyperGroup):
    """The top-level command group: every command's errors pass here on their way out."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click.Context
        try:
            return super().invoke(ctx)
        except Exception as error:
            lines = _explain(error)
            if lines is None or ctx.meta.get(_DEBUG) or _debug_logging():
                raise
            err.print(f"[red]error:[/] {escape(lines[0])}")
            for line in lines[1:]:
                err.print(f"  {escape(line)}")
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Commands,
    help="A self-hostable server for a chat platform's Deals API.",
    pretty_exceptions_show_locals=False,  # the settings hold secrets
)
accounts_app = typer.Typer(help="Accounts (tenants): each sees only its own deals.")
keys_app = typer.Typer(help="API keys: shown once when created, stored only as a hash.")
db_app = typer.Typer(help="The database.")
channels_app = typer.Typer(help="Channels: the messenger connections an account's chats use.")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(channels_app, name="channels")


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"crmdeals {__version__}")
        raise typer.Exit


@app.callback()
def main(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show the whole traceback of an error (so does CRMDEALS_LOG_LEVEL=debug).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """A self-hostable server for a chat platform's Deals API."""
    ctx.meta[_DEBUG] = debug


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(1)


# -- the settings and the database -------------------------------------------------------------


def _settings() -> Settings:
    """The server's settings (``CRMDEALS_*``, ``./.env``)."""
    from crmdeals.settings import Settings

    return Settings()


def _migrated_store(settings: Settings) -> Store:
    """The database, created and migrated when it needs to be (serve, db upgrade, accounts
    create)."""
    from crmdeals.storage import Store, connect, upgrade

    with _database(settings.database_url):
        engine = connect(settings.database_url, timeout=settings.db_timeout)
        upgrade(engine)
    return Store(engine)


def _existing_store(settings: Settings) -> Store:
    """The database, which must exist and be up to date: commands that read it (and those
    that change only some rows) never create one, nor change its tables."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import make_url

    from crmdeals.storage import Store, connect
    from crmdeals.storage.engine import MIGRATIONS

    url = make_url(settings.database_url)
    where = _shown_database(settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        raise Mistake(
            f"No database at {url.database} (CRMDEALS_DATABASE_URL={where}).",
            "`crmdeals serve` or `crmdeals db upgrade` creates it; or set "
            "CRMDEALS_DATABASE_URL to the database the server uses.",
        )
    with _database(settings.database_url):
        engine = connect(settings.database_url, timeout=settings.db_timeout)
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    scripts = ScriptDirectory(str(MIGRATIONS))
    if current is None:
        raise Mistake(
            f"The database {where} (CRMDEALS_DATABASE_URL) has no crmdeals tables.",
            "`crmdeals db upgrade` (or `crmdeals serve`) creates them.",
        )
    if current != scripts.get_current_head():
        if current in {script.revision for script in scripts.walk_revisions()}:
            raise Mistake(
                f"The database {where} (CRMDEALS_DATABASE_URL) needs migrations.",
                "`crmdeals db upgrade` (or `crmdeals serve`) applies them.",
            )
        raise Mistake(*_newer_database(where, current))
    return Store(engine)


@contextmanager
def _database(database_url: str) -> Iterator[None]:
    """The database's errors as a ``Mistake`` that names it (without its password)."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except CommandError as error:  # Alembic: a revision this crmdeals does not know
        revision = str(error).rpartition(" ")[2].strip("'")
        raise Mistake(*_newer_database(_shown_database(database_url), revision)) from error
    except SQLAlchemyError as error:
        reason = _database_reason(error, database_url)
        raise Mistake(
            f"Cannot use the database {_shown_database(database_url)} "
            f"(CRMDEALS_DATABASE_URL): {_sentence(reason)}",
            "Check that it runs and that the URL is right (--debug shows the whole error).",
        ) from error


def _newer_database(where: str, revision: str) -> list[str]:
    return [
        f"The database {where} (CRMDEALS_DATABASE_URL) was migrated by a newer crmdeals "
        f"(revision {revision!r} is unknown to this one).",
        "Install that crmdeals, or set CRMDEALS_DATABASE_URL to another database.",
    ]


def _shown_database(database_url: str) -> str:
    """The database URL as a message may show it: without its password."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(not a database URL)"


def _explain(error: Exception) -> list[str] | None:
    """``error`` in words: what went wrong, naming the setting, option or address, and
    what to do; ``None`` for an error that is not a mistake of those (a bug: its
    traceback is shown)."""
    if isinstance(error, Mistake):
        return [str(line) for line in error.args]
    if not {"pydantic", "sqlalchemy"} & sys.modules.keys():
        return None  # the command never loaded the settings or the database: not theirs
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from crmdeals.settings import Settings

    if isinstance(error, ValidationError) and error.title == Settings.__name__:
        return _explain_settings(error)
    if isinstance(error, ValidationError):
        return [f"Invalid values: {error}"]
    if not isinstance(error, SQLAlchemyError):
        return None
    return [  # a database error after the database was opened
        f"The database (CRMDEALS_DATABASE_URL) failed: {_sentence(_database_reason(error, None))}",
        "--debug shows the whole error.",
    ]


def _explain_settings(error: ValidationError) -> list[str]:
    from crmdeals.settings import Settings

    lines = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        variable = f"CRMDEALS_{field.upper()}"
        message = problem["msg"].removeprefix("Value error, ")
        if field in _SECRET_SETTINGS:
            lines.append(f"{variable} is wrong: {_sentence(message)}")
        elif field.endswith("_url"):
            lines.append(f"{variable}={_shown_url(str(problem['input']))}: {_sentence(message)}")
        else:
            lines.append(f"{variable}={problem['input']!r}: {_sentence(message)}")
    hint = "Fix it in the environment (or in ./.env), or unset it for the default"
    field = str(error.errors()[0]["loc"][0]) if len(error.errors()) == 1 else ""
    default = Settings.model_fields[field].default if field in Settings.model_fields else None
    if default is not None and field not in _SECRET_SETTINGS:
        hint += f" ({default})"
    lines.append(hint + ".")
    return lines


def _sentence(text: str) -> str:
    """``text`` ending as a sentence does."""
    return text if text.endswith((".", "?", "!")) else text + "."


def _shown_url(value: str) -> str:
    """A URL without the password it may hold."""
    scheme, separator, rest = value.partition("://")
    credentials, at, host = rest.rpartition("@")
    if separator and at and ":" in credentials:
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return value


def _database_reason(error: Exception, database_url: str | None) -> str:
    """Why the database could not be used: the driver's words, and for a SQLite file the
    likely cause."""
    from sqlalchemy import make_url

    original = getattr(error, "orig", None) or error
    reason = " ".join(str(original).split()) or type(original).__name__
    if database_url and make_url(database_url).get_backend_name() == "sqlite":
        database = make_url(database_url).database or ""
        folder = Path(database).absolute().parent
        if folder.exists() and not folder.is_dir():
            return f"{reason}: {folder} is a file, not a folder"
        if not folder.is_dir():
            return f"{reason}: the folder {folder} does not exist"
        if not os.access(folder, os.W_OK) or (
            Path(database).exists() and not os.access(database, os.W_OK)
        ):
            return f"{reason}: {folder} or the file is not writable by this user"
    return reason


def _debug_logging() -> bool:
    return os.environ.get("CRMDEALS_LOG_LEVEL", "").strip().lower() == "debug"


# -- serve -----------------------------------------------------------------------------------


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(envvar="CRMDEALS_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            envvar="CRMDEALS_PORT", min=0, max=65535, help="Port to listen on (0: any free one)."
        ),
    ] = 8000,
    workers: Annotated[
        int, typer.Option(envvar="CRMDEALS_WORKERS", min=1, help="Server processes.")
    ] = 1,
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            envvar="CRMDEALS_SANDBOX",
            help="Sandbox mode for integrators: the /sandbox routes.",
        ),
    ] = False,
) -> None:
    """Migrate the database, make sure an account exists, and serve the API."""
    import uvicorn

    from crmdeals import accounts as account_service
    from crmdeals import metrics
    from crmdeals.api.connections import raise_file_limit
    from crmdeals.logs import logging_config

    if sandbox:
        os.environ["CRMDEALS_SANDBOX"] = "1"  # the workers read their settings afresh
    settings = _settings()
    # Not given (not even in the environment): the settings' value, which a .env file may set.
    given = {name for name in ("host", "port", "workers") if _given(ctx, name)}
    host = host if "host" in given else settings.host
    port = port if "port" in given else settings.port
    workers = workers if "workers" in given else settings.workers
    if settings.sandbox and workers > 1:
        raise Mistake(
            f"Sandbox mode (--sandbox, CRMDEALS_SANDBOX) runs in one process, not {workers} "
            "(--workers, CRMDEALS_WORKERS).",
            "Leave out one of them.",
        )
    _check_address(host, port)
    store = _migrated_store(settings)
    message = account_service.bootstrap(store, settings.bootstrap_key)
    store.engine.dispose()
    if message:
        print(message, flush=True)  # stdout: stderr carries only JSON log lines
    # Before the workers start (they inherit it); after the checks above, so that a mistake
    # is the only thing said.
    raise_file_limit(settings)
    with tempfile.TemporaryDirectory(prefix="crmdeals-metrics-") as metrics_dir:
        if workers > 1:  # the workers start afresh and find it: /metrics sums them all
            os.environ[metrics.MULTIPROCESS_DIR_VARIABLE] = metrics_dir
        uvicorn.run(
            "crmdeals.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="crmdeals.api.protocol:BoundedHttpToolsProtocol",
            access_log=False,
            log_config=logging_config(settings.log_level),
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            # uvicorn would believe X-Forwarded-For from 127.0.0.1 unless told otherwise, so
            # any local program could pick the address its requests are limited by.
            proxy_headers=settings.forwarded_allow_ips is not None,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given, on the command line or by its variable."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def _check_address(host: str, port: int) -> None:
    """Bind ``host:port`` once, as uvicorn will, so that an address that cannot be had is a
    message before anything starts, rather than a log line from a server that then exits."""
    where = f"{host}:{port}"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except socket.gaierror:
        raise Mistake(
            f"Cannot listen on {where}: {host!r} is not a known host name or address "
            "(--host, CRMDEALS_HOST).",
            "Give an address of this machine, e.g. 127.0.0.1 or 0.0.0.0 for all of them.",
        ) from None
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise Mistake(
                f"Cannot listen on {where}: the port is taken by another program "
                "(another crmdeals serve?).",
                "Stop it, or choose another port with --port or CRMDEALS_PORT.",
            ) from None
        if error.errno == errno.EACCES:
            raise Mistake(
                f"Cannot listen on {where}: ports below 1024 need more rights than this user has.",
                "Choose a port from 1024 up with --port or CRMDEALS_PORT.",
            ) from None
        if error.errno == errno.EADDRNOTAVAIL:
            raise Mistake(
                f"Cannot listen on {where}: {host} is not an address of this machine "
                "(--host, CRMDEALS_HOST).",
                "Give one of its addresses, e.g. 127.0.0.1 or 0.0.0.0 for all of them.",
            ) from None
        reason = (error.strerror or str(error)).lower()
        raise Mistake(
            f"Cannot listen on {where} (--host, --port): {reason}.",
            "Choose another address or port (CRMDEALS_HOST, CRMDEALS_PORT).",
        ) from None


# -- accounts and keys -----------------------------------------------------------------------


@accounts_app.command("create")
def accounts_create(name: str) -> None:
    """Create an account and print its first API key (shown once)."""
    from crmdeals import accounts as account_service

    try:
        _, key = account_service.create_account(_migrated_store(_settings()), name)
    except account_service.AccountError as error:
        raise _fail(str(error)) from None
    err.print(f"Created account {escape(repr(name))}. Its API key, shown once:")
    print(key)


@accounts_app.command("list")
def accounts_list() -> None:
    """List the accounts."""
    table = Table("id", "name", "created")
    for account in _existing_store(_settings()).list_accounts():
        table.add_row(str(account.id), account.name, f"{account.created_at:%Y-%m-%d %H:%M}")
    Console().print(table)


@accounts_app.command("crm-key")
def accounts_crm_key(
    account: Annotated[str, typer.Argument(help="Account name.")],
    set_key: Annotated[
        bool, typer.Option("--set", help="Set the key, read from stdin (one line).")
    ] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the key.")] = False,
) -> None:
    """Set or clear the crm key the account's webhooks carry (`Authorization: Bearer`). The
    key is never printed, logged or shown by the API."""
    from crmdeals.webhooks.validation import check_crm_key

    if set_key == clear:
        raise Mistake("Give --set (with the key on stdin) or --clear.")
    crm_key = None
    if set_key:
        try:
            crm_key = check_crm_key(sys.stdin.readline().removesuffix("\n").removesuffix("\r"))
        except ValueError as error:
            raise Mistake(f"The crm key on stdin is not valid: it must be {error}.") from None
    store = _existing_store(_settings())
    try:
        found = store.find_account(account)
        if found is None:
            raise _fail(f"No account named {account!r}.")
        store.set_crm_key_now(account_id=found.id, crm_key=crm_key)
    finally:
        store.engine.dispose()
    done = "Set" if set_key else "Cleared"
    err.print(f"{done} the crm key of account {escape(repr(account))}.")


@keys_app.command("create")
def keys_create(account: Annotated[str, typer.Argument(help="Account name.")]) -> None:
    """Create another API key for an account and print it (shown once)."""
    from crmdeals import accounts as account_service

    try:
        key = account_service.create_key(_existing_store(_settings()), account)
    except account_service.AccountError as error:
        raise _fail(str(error)) from None
    err.print(f"New API key for {escape(repr(account))}, shown once:")
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """List the keys by id and prefix (the keys themselves are not stored)."""
    table = Table("id", "prefix", "account", "created", "revoked")
    for key in _existing_store(_settings()).list_keys():
        revoked = f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else ""
        created = f"{key.created_at:%Y-%m-%d %H:%M}"
        table.add_row(str(key.id), key.prefix, key.account_name, created, revoked)
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[
        str,
        typer.Argument(
            help="The key, its first 4 to 8 characters, or its id (as `keys list` shows them).",
        ),
    ],
) -> None:
    """Revoke a key: it stops working at once."""
    from crmdeals import accounts as account_service

    try:
        revoked = account_service.revoke_key(_existing_store(_settings()), key)
    except account_service.AmbiguousKey as error:
        err.print(f"[red]error:[/] {escape(str(error))} Give the whole key or the id of one:")
        table = Table("id", "prefix", "account", "created", "revoked", box=None)
        for candidate in error.candidates:
            revoked_at = f"{candidate.revoked_at:%Y-%m-%d %H:%M}" if candidate.revoked_at else ""
            table.add_row(
                str(candidate.id),
                candidate.prefix,
                candidate.account_name,
                f"{candidate.created_at:%Y-%m-%d %H:%M}",
                revoked_at,
            )
        err.print(table)
        raise typer.Exit(1) from None
    except account_service.AccountError as error:
        raise _fail(str(error)) from None
    err.print(
        f"Revoked the key {revoked.prefix}… (id {revoked.id}) of account "
        f"{escape(repr(revoked.account_name))}."
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database if needed and apply the migrations that have not run yet."""
    _migrated_store(_settings())
    err.print("The database is up to date.")


# -- channels --------------------------------------------------------------------------------


@channels_app.command("set")
def channels_set(
    account: Annotated[str, typer.Argument(help="Account name.")],
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="A JSON array of channels (`-`: stdin), as `PUT /sandbox/channels` takes.",
        ),
    ],
) -> None:
    """Replace the account's channels with those of FILE, in its order; print them as
    stored (with the ids given to those without one). A kept channel with a new state sends
    `channelsUpdates` when the account's switch is on."""
    from crmdeals.webhooks.validation import parse_channels

    try:
        body = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise Mistake(f"Cannot read {file} (FILE): {reason}.") from None
    try:
        channels = parse_channels(body)
    except ApiError as error:
        problems = error.data.get("fields", {}) if isinstance(error.data, dict) else {}
        for field, problem in problems.items():
            err.print(f"[red]{escape(field)}:[/] {escape(problem)}")
        raise _fail(f"{file}: {error.description}") from None
    settings = _settings()
    store = _existing_store(settings)
    try:
        found = store.find_account(account)
        if found is None:
            raise _fail(f"No account named {account!r}.")
        stored = store.replace_channels_now(
            account_id=found.id,
            channels=channels,
            now=datetime.now(UTC),
            log_size=settings.webhooks_log_size,
        )
    finally:
        store.engine.dispose()
    err.print(f"Stored {counted(len(stored), 'channel')} for account {escape(repr(account))}.")
    print(msgspec.json.encode(stored).decode())


# -- push and pull ---------------------------------------------------------------------------

Url = Annotated[
    str,
    typer.Option(envvar="CRMDEALS_URL", help="The server's address."),
]
Key = Annotated[
    str | None,
    typer.Option(envvar="CRMDEALS_API_KEY", show_default=False, help="The account's API key."),
]
RateLimitOption = Annotated[
    str,
    typer.Option(
        "--rate-limit", help="Requests per window the server allows ('500/5s'), or 'off'."
    ),
]
Concurrency = Annotated[int, typer.Option(min=1, help="Requests in flight at once.")]


def _client(url: str, key: str | None, rate_limit: str, concurrency: int) -> DealsClient:
    try:
        check_url(url)
    except ValueError as error:
        raise Mistake(f"--url (or CRMDEALS_URL): {error}.") from None
    if not key:
        raise Mistake(
            "No API key: give --key or set CRMDEALS_API_KEY.",
            "`crmdeals keys create ACCOUNT` makes one.",
        )
    try:
        limit = parse_rate_limit(rate_limit)
    except ValueError as error:
        raise Mistake(f"--rate-limit {rate_limit!r}: {error}.") from None
    return DealsClient(url, key, rate_limit=limit, concurrency=concurrency)


@contextmanager
def _talking_to(url: str) -> Iterator[None]:
    """The client's errors as messages: a server that cannot be reached or that refuses
    the key is a mistake of the options (exit status 2), any other refusal exit status 1."""
    try:
        yield
    except DealsConnectionError as error:
        hint = "Is `crmdeals serve` running there? Else give --url or CRMDEALS_URL."
        raise Mistake(f"Could not reach the server at {url}: {error.reason}.", hint) from None
    except DealsApiError as error:
        if error.status == 401:
            raise Mistake(
                f"The server at {url} refused the API key ({error.description}).",
                "Give a key of the account with --key or CRMDEALS_API_KEY.",
            ) from None
        raise _fail(f"the server at {url} answered {error}") from None
    except DealsError as error:
        raise _fail(str(error)) from None


EntityOption = Annotated[
    Entity | None,
    typer.Option(
        "--entity",
        show_default=False,
        help="What the files hold: one of users, contacts, pipelines, deals. By default, "
        "each file's name says it (users.csv, contacts.jsonl, pipelines.json; any other "
        "name: deals).",
    ),
]


@app.command()
def push(
    files: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            show_default=False,
            metavar="FILE...",
            help="Files (.csv, .json or .jsonl) of users, contacts, pipelines or deals; sent "
            "in that order, whatever the order given.",
        ),
    ],
    *,
    entity: EntityOption = None,
    url: Url = DEFAULT_URL,
    key: Key = None,
    mirror: Annotated[
        bool,
        typer.Option(
            "--mirror",
            help="Also delete the account's users, contacts and deals that the files lack "
            "(pipelines always: a push replaces their whole set).",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Only print what would be added, changed and deleted."),
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Send nothing if any row is invalid.")
    ] = False,
    rate_limit: RateLimitOption = "500/5s",
    concurrency: Concurrency = 8,
) -> None:
    """Upload files of users, contacts, pipelines and deals, 100 a request, as fast as the
    rate limit allows. Each file is read as it is sent (with --strict, read once more
    before, to check it)."""
    client = _client(url, key, rate_limit, concurrency)
    given: dict[Entity, list[Path]] = {}
    for file in files:
        given.setdefault(entity or entity_of(file), []).append(file)
    by_entity = {name: given[name] for name in ENTITIES if name in given}  # in sending order
    rows: dict[Entity, transfer.Rows] = {}
    with client, ExitStack() as opened:
        try:
            if strict:
                _check_strictly(by_entity, files)
            for name, paths in by_entity.items():
                rows[name] = opened.enter_context(transfer.Rows(paths, name))
            sources: dict[Entity, Iterable[Any]] = dict(rows)
            if "pipelines" in rows:  # one request: read whole, before anything is sent
                sources["pipelines"] = _pipelines(rows["pipelines"], files)
        except (FileError, OSError) as error:
            raise _fail(str(error)) from None
        try:
            with _talking_to(client.url):
                for name, items in sources.items():
                    summary = transfer.push(
                        client, items, mirror=mirror, dry_run=dry_run, entity=name
                    )
                    err.print(escape(summary))
        except (FileError, OSError) as error:  # found further on in a file
            raise _fail(f"{error} (the push stopped there)") from None
        finally:
            invalid_rows = [row for each in rows.values() for row in each.invalid]
            _report(invalid_rows, files)
    if invalid_rows:
        was = "was" if len(invalid_rows) == 1 else "were"
        err.print(f"[red]{counted(len(invalid_rows), 'invalid row')} {was} not sent.[/]")
        raise typer.Exit(1)


def _check_strictly(by_entity: dict[Entity, list[Path]], files: list[Path]) -> None:
    """Read every file once, only to check it (``--strict``): ``_fail`` if a row is
    invalid, before anything is sent."""
    for file in files:
        if not file.is_file():
            raise Mistake(
                f"--strict reads each file twice (a check, then the push): {file} is not "
                "a regular file (a pipe?).",
                "Save it to a file first, or leave out --strict.",
            )
    invalid_rows = [
        row for name, paths in by_entity.items() for row in transfer.invalid_rows(paths, name)
    ]
    if invalid_rows:
        _report(invalid_rows, files)
        raise _fail(f"{counted(len(invalid_rows), 'invalid row')}: nothing was sent (--strict)")


def _pipelines(rows: transfer.Rows, files: list[Path]) -> list[Any]:
    """The valid pipelines of ``rows``; ``_fail`` if there are more than one request takes."""
    pipelines = list(rows)
    count = len({pipeline.id for pipeline in pipelines})
    if count > MAX_ENTITIES:
        _report(rows.invalid, files)
        raise _fail(
            f"{count} pipelines: a push replaces the account's whole set in one request, of "
            f"at most {MAX_ENTITIES}; nothing was sent"
        )
    return pipelines


def _report(invalid_rows: list[transfer.Invalid], files: list[Path]) -> None:
    """Print the invalid rows, by file (in the order given) and line."""
    for row in sorted(invalid_rows, key=lambda row: (files.index(row.path), row.line)):
        details = "; ".join(f"{field}: {problem}" for field, problem in row.problems.items())
        err.print(f"[red]{escape(str(row.path))}, line {row.line}:[/] {escape(details)}")


@app.command()
def pull(
    *,
    url: Url = DEFAULT_URL,
    key: Key = None,
    entity: Annotated[
        Entity | None,
        typer.Option(
            "--entity",
            show_default="-o's name (users.csv: users), or deals",
            help="What to pull: one of users, contacts, pipelines, deals.",
        ),
    ] = None,
    output_format: Annotated[
        Format | None,
        typer.Option(
            "--format",
            show_default="-o's suffix, or jsonl",
            help=f"One of {', '.join(FORMATS)}.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", show_default="stdout", help="The file to write."),
    ] = None,
    rate_limit: RateLimitOption = "500/5s",
) -> None:
    """Write every deal (or user, contact, pipeline) of the account, in a form `crmdeals
    push` reads back."""
    try:
        format_ = output_format or (format_of(output) if output else "jsonl")
    except FileError as error:
        raise Mistake(f"-o {output}: {error}.") from None
    entity = entity or (entity_of(output) if output else "deals")
    with _client(url, key, rate_limit, concurrency=1) as client, _talking_to(client.url):
        if output is None:
            count = transfer.pull(client, format_, sys.stdout, entity)
        else:
            try:
                out = output.open("w", encoding="utf-8", newline="")
            except OSError as error:
                reason = (error.strerror or str(error)).lower()
                raise Mistake(f"Cannot write {output} (-o): {reason}.") from None
            with out:
                count = transfer.pull(client, format_, out, entity)
    err.print(f"Pulled {counted(count, SINGULAR[entity], entity)}.")


@app.command("panel-link")
def panel_link(
    account: Annotated[str, typer.Option(help="The account's name.")],
    user: Annotated[str, typer.Option(help="The user (sales rep) whose deals to show.")],
    contact: Annotated[str, typer.Option(help="The contact the deals are with.")],
    ttl: Annotated[
        int,
        typer.Option(
            min=panel.MIN_TTL_SECONDS,
            max=panel.MAX_TTL_SECONDS,
            help="Seconds the link works.",
        ),
    ] = panel.DEFAULT_TTL_SECONDS,
    base_url: Annotated[
        str,
        typer.Option(envvar="CRMDEALS_URL", help="The server's address as browsers reach it."),
    ] = DEFAULT_URL,
) -> None:
    """Print a link to the deals panel of a user and a contact (signed, expiring)."""
    for option, value in (("--user", user), ("--contact", contact)):
        if not is_storable_id(value):
            raise _fail(f"{option}: an id has 1 to 100 characters")
    try:
        check_url(base_url)
    except ValueError as error:
        raise Mistake(f"--base-url (or CRMDEALS_URL): {error}.") from None
    settings = _settings()
    store = _existing_store(settings)
    found = store.find_account(account)
    if found is None:
        raise _fail(f"No account named {account!r}.")
    signer = Signer(anyio.run(signing.server_secret, settings, store))
    link = panel.issue_link(
        signer,
        base_url=base_url,
        account_id=found.id,
        user_id=user,
        contact_id=contact,
        ttl_seconds=ttl,
    )
    err.print(f"Valid until {link.expiresAt}.")
    print(link.url)
