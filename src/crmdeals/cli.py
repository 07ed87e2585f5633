"""The ``crmdeals`` command: serve, manage accounts and keys, migrate the database."""

import os
import tempfile
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from crmdeals import accounts as account_service
from crmdeals import metrics
from crmdeals.logs import logging_config
from crmdeals.settings import Settings
from crmdeals.storage import Store, connect, upgrade

app = typer.Typer(help="A self-hostable server for a chat platform's Deals API.")
accounts_app = typer.Typer(help="Accounts (tenants): each sees only its own deals.")
keys_app = typer.Typer(help="API keys: shown once when created, stored only as a hash.")
db_app = typer.Typer(help="The database.")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
err = Console(stderr=True)

GRACEFUL_SHUTDOWN_SECONDS = 30
"""On SIGTERM or SIGINT: how long requests in flight may take to finish before the
connections are closed. No new connection is accepted meanwhile."""


def _migrated_store(settings: Settings) -> Store:
    engine = connect(settings.database_url, timeout=settings.db_timeout)
    upgrade(engine)
    return Store(engine)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/] {message}")
    return typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes.", min=1)] = None,
) -> None:
    """Migrate the database, make sure an account exists, and serve the API."""
    settings = Settings()
    store = _migrated_store(settings)
    message = account_service.bootstrap(store, settings.bootstrap_key)
    store.engine.dispose()
    if message:
        print(message, flush=True)  # stdout: stderr carries only JSON log lines
    workers = workers or settings.workers
    with tempfile.TemporaryDirectory(prefix="crmdeals-metrics-") as metrics_dir:
        if workers > 1:  # the workers start afresh and find it: /metrics sums them all
            os.environ[metrics.MULTIPROCESS_DIR_VARIABLE] = metrics_dir
        uvicorn.run(
            "crmdeals.app:create_app",
            factory=True,
            host=host or settings.host,
            port=settings.port if port is None else port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_config=logging_config(settings.log_level),
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )


@accounts_app.command("create")
def accounts_create(name: str) -> None:
    """Create an account and print its first API key (shown once)."""
    try:
        _, key = account_service.create_account(_migrated_store(Settings()), name)
    except account_service.AccountError as error:
        raise _fail(str(error)) from None
    err.print(f"Created account {name!r}. Its API key, shown once:")
    print(key)


@accounts_app.command("list")
def accounts_list() -> None:
    """List the accounts."""
    table = Table("id", "name", "created")
    for account in _migrated_store(Settings()).list_accounts():
        table.add_row(str(account.id), account.name, f"{account.created_at:%Y-%m-%d %H:%M}")
    Console().print(table)


@keys_app.command("create")
def keys_create(account: Annotated[str, typer.Argument(help="Account name.")]) -> None:
    """Create another API key for an account and print it (shown once)."""
    try:
        key = account_service.create_key(_migrated_store(Settings()), account)
    except account_service.AccountError as error:
        raise _fail(str(error)) from None
    err.print(f"New API key for {account!r}, shown once:")
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """List the keys by prefix (the keys themselves are not stored)."""
    table = Table("prefix", "account", "created", "revoked")
    for key in _migrated_store(Settings()).list_keys():
        revoked = f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else ""
        table.add_row(key.prefix, key.account_name, f"{key.created_at:%Y-%m-%d %H:%M}", revoked)
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix, as `keys list` shows it.")],
) -> None:
    """Revoke a key: it stops working at once."""
    try:
        account_service.revoke_key(_migrated_store(Settings()), prefix)
    except account_service.AccountError as error:
        raise _fail(str(error)) from None
    err.print(f"Revoked the key {prefix}…")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations that have not run yet."""
    settings = Settings()
    _migrated_store(settings)
    err.print("The database is up to date.")
