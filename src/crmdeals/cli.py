"""The ``crmdeals`` command: serve, manage accounts and keys, migrate the database; push a
deal file to a server and pull one back (``crmdeals.transfer``); make panel links."""

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import anyio
import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from crmdeals import accounts as account_service
from crmdeals import metrics, panel, signing, transfer
from crmdeals.client import DealsClient, DealsError
from crmdeals.deals.validation import is_storable_id
from crmdeals.files import FORMATS, FileError, Format, format_of
from crmdeals.limits import parse_rate_limit
from crmdeals.logs import logging_config
from crmdeals.settings import Settings
from crmdeals.signing import Signer
from crmdeals.storage import Store, connect, upgrade

app = typer.Typer(help="A self-hostable server for a chat platform's Deals API.")
accounts_app = typer.Typer(help="Accounts (tenants): each sees only its own deals.")
keys_app = typer.Typer(help="API keys: shown once when created, stored only as a hash.")
db_app = typer.Typer(help="The database.")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
err = Console(stderr=True, soft_wrap=True)

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
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Sandbox mode (CRMDEALS_SANDBOX): /sandbox routes.")
    ] = False,
) -> None:
    """Migrate the database, make sure an account exists, and serve the API."""
    if sandbox:
        os.environ["CRMDEALS_SANDBOX"] = "1"  # the workers read their settings afresh
    settings = Settings()
    if settings.sandbox and (workers or settings.workers) > 1:
        raise _fail("sandbox mode keeps its faults and request log in one process: one worker")
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
            http="crmdeals.api.protocol:BoundedHttpToolsProtocol",
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


Url = Annotated[
    str | None,
    typer.Option(envvar="CRMDEALS_URL", help="The server, e.g. http://127.0.0.1:8000."),
]
Key = Annotated[str | None, typer.Option(envvar="CRMDEALS_API_KEY", help="The account's API key.")]
RateLimitOption = Annotated[
    str,
    typer.Option(
        "--rate-limit", help="Requests per window the server allows ('500/5s'), or 'off'."
    ),
]
Concurrency = Annotated[int, typer.Option(min=1, help="Requests in flight at once.")]


def _client(url: str | None, key: str | None, rate_limit: str, concurrency: int) -> DealsClient:
    if not url or not key:
        raise _fail("give --url and --key (or CRMDEALS_URL and CRMDEALS_API_KEY)")
    try:
        limit = parse_rate_limit(rate_limit)
    except ValueError as error:
        raise _fail(f"--rate-limit: {error}") from None
    return DealsClient(url, key, rate_limit=limit, concurrency=concurrency)


@app.command()
def push(
    file: Annotated[Path, typer.Argument(help="A .csv, .json or .jsonl file of deals.")],
    *,
    url: Url = None,
    key: Key = None,
    mirror: Annotated[
        bool,
        typer.Option("--mirror", help="Also delete the account's deals that the file lacks."),
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
    """Upload a file's deals, 100 a request, as fast as the rate limit allows."""
    try:
        checked = transfer.check_file(file)
    except (FileError, OSError) as error:
        raise _fail(str(error)) from None
    for line, problems in checked.invalid:
        details = "; ".join(f"{field}: {problem}" for field, problem in problems.items())
        err.print(f"[red]line {line}:[/] {details}", highlight=False)
    if checked.invalid and strict:
        raise _fail(f"{len(checked.invalid)} invalid rows: nothing was sent (--strict)")
    with _client(url, key, rate_limit, concurrency) as client:
        try:
            summary = transfer.push(client, checked.deals, mirror=mirror, dry_run=dry_run)
        except DealsError as error:
            raise _fail(str(error)) from None
    err.print(summary)
    if checked.invalid:
        err.print(f"[red]{len(checked.invalid)} invalid rows were not sent.[/]")
        raise typer.Exit(1)


@app.command()
def pull(
    url: Url = None,
    key: Key = None,
    output_format: Annotated[
        Format | None,
        typer.Option(
            "--format", help=f"One of {', '.join(FORMATS)}; default: -o's suffix, or jsonl."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    rate_limit: RateLimitOption = "500/5s",
) -> None:
    """Write every deal of the account, in a form `crmdeals push` reads back."""
    try:
        format_ = output_format or (format_of(output) if output else "jsonl")
    except FileError as error:
        raise _fail(str(error)) from None
    with _client(url, key, rate_limit, concurrency=1) as client:
        try:
            if output is None:
                count = transfer.pull(client, format_, sys.stdout)
            else:
                with output.open("w", encoding="utf-8", newline="") as out:
                    count = transfer.pull(client, format_, out)
        except DealsError as error:
            raise _fail(str(error)) from None
    err.print(f"Pulled {count} deals.")


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
    ] = "http://127.0.0.1:8000",
) -> None:
    """Print a link to the deals panel of a user and a contact (signed, expiring)."""
    for option, value in (("--user", user), ("--contact", contact)):
        if not is_storable_id(value):
            raise _fail(f"{option}: an id has 1 to 100 characters")
    settings = Settings()
    store = _migrated_store(settings)
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
