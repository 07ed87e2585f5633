"""All configuration, read once from ``CRMDEALS_*`` environment variables (or a ``.env`` file).

Unsafe or malformed values are refused at start-up, not at the first request.
"""

import re
from functools import cached_property
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from crmdeals.limits import USER_LIMIT, RateLimit, parse_rate_limit
from crmdeals.storage.engine import DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT

KEY_PATTERN = re.compile(r"^[0-9a-f]{32}$")
"""An API key: 32 lowercase hex characters."""

_FRAME_ANCESTOR_PATTERN = re.compile(
    r"^(\*|'self'|https?:|(https?://)?(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:([0-9]{1,5}|\*))?)$"
)
"""One source of a CSP ``frame-ancestors`` list: ``'self'``, a scheme (``https:``), a host
with optional scheme, ``*.`` and port (``https://chat.example.com``), or ``*``."""
MIN_SECRET_KEY_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRMDEALS_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        "sqlite:///./crmdeals.db",
        description="The database: a SQLite file (sqlite:///path) or PostgreSQL "
        "(postgresql://user:password@host:port/database).",
    )
    db_pool_size: Annotated[int, Field(ge=1)] = Field(
        DEFAULT_POOL_SIZE, description="Database connections each server process keeps open."
    )
    db_timeout: Annotated[float, Field(gt=0)] = Field(
        DEFAULT_TIMEOUT,
        description="Seconds a request may wait for a free connection, a lock or a query "
        "before it gets 503.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis (redis://host:port/db) holding the rate-limit counters that "
        "all processes share. Unset: each process counts on its own.",
    )
    rate_limit: str = Field(
        "500/5s", description="'REQUESTS/SECONDSs' per account and per client address, or 'off'."
    )
    max_body_bytes: Annotated[int, Field(gt=0)] = Field(
        1024 * 1024, description="Largest request body accepted (413 above)."
    )
    user_limit: Annotated[int, Field(ge=0)] = Field(
        USER_LIMIT,
        description="Users each account may hold; an upload that would add more is refused "
        "(USER_LIMIT_EXCEEDED). 0: no limit.",
    )
    bootstrap_key: str | None = Field(
        None,
        description="A known API key (32 lowercase hex) for the 'default' account; "
        "sandboxes and tests. Unset: a random key is made for an empty database.",
    )
    host: str = Field("127.0.0.1", description="Address `crmdeals serve` listens on.")
    port: Annotated[int, Field(ge=0, le=65535)] = Field(8000, description="Port to listen on.")
    workers: Annotated[int, Field(ge=1)] = Field(1, description="Server processes.")
    max_connections: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="Connections each server process holds at most; past it, the one that "
        "has waited longest for a request is closed. Unset: 10,000, or fewer if the file "
        "limit requires (it less an eighth, at least 128, kept for other files).",
    )
    forwarded_allow_ips: str | None = Field(
        None,
        description="The proxies (load balancers) whose X-Forwarded-For and "
        "X-Forwarded-Proto headers are believed: addresses or networks separated by commas. "
        "Unset: none, so a client cannot choose the address it is rate-limited by.",
    )
    sandbox: bool = Field(
        False,
        description="Sandbox mode for integrators: the /sandbox routes (reset, seed, "
        "faults, request log). Off: they do not exist.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="The key that signs panel links and inspector sessions (at least 32 "
        "characters). Unset: one is generated on first use and kept in the database, so "
        "every process shares it.",
    )
    panel_frame_ancestors: str = Field(
        "'none'",
        description="Who may show /panel in a frame: the Content-Security-Policy "
        "frame-ancestors sources, e.g. 'https://chat.example.com'. 'none': nobody.",
    )
    public_url: str | None = Field(
        None,
        description="The address browsers reach the server at (https://deals.example.com, "
        "a path allowed), which panel links start with. Unset: the address each request "
        "came to.",
    )
    webhooks_allow_private: bool = Field(
        False,
        description="Let webhooks go to loopback, private and other non-public addresses "
        "(always allowed in sandbox mode). Off: such an address is refused (uriNotValid), "
        "checked on the resolved address at every connection.",
    )
    webhooks_max_attempts: Annotated[int, Field(ge=1, le=20)] = Field(
        5, description="Attempts of each webhook delivery before it is failed."
    )
    webhooks_retry_base_seconds: Annotated[float, Field(gt=0)] = Field(
        30,
        description="Seconds before a delivery's second attempt, doubled for each one after "
        "(±10%).",
    )
    webhooks_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = Field(
        30, description="Seconds each webhook attempt (and the test POST) may take in all."
    )
    webhooks_log_size: Annotated[int, Field(ge=1)] = Field(
        1000,
        description="Deliveries kept in each account's delivery log (the newest; pending "
        "ones always).",
    )
    chat_window_ttl_seconds: Annotated[int, Field(ge=60)] = Field(
        3600, description="Seconds a chat window's URL (POST /v3/iframe) works."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level of log lines written (JSON, to stderr)."
    )

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        parse_rate_limit(value)
        return value

    @field_validator("bootstrap_key")
    @classmethod
    def _check_bootstrap_key(cls, value: str | None) -> str | None:
        if value is not None and not KEY_PATTERN.match(value):
            raise ValueError("an API key is 32 lowercase hex characters")
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                f"a secret key has at least {MIN_SECRET_KEY_LENGTH} characters, e.g. "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("panel_frame_ancestors")
    @classmethod
    def _check_panel_frame_ancestors(cls, value: str) -> str:
        sources = value.split()
        if sources == ["'none'"]:
            return value
        if not sources or not all(_FRAME_ANCESTOR_PATTERN.match(source) for source in sources):
            raise ValueError(
                "expected 'none', or sources separated by spaces such as "
                "'self' https://chat.example.com https://*.example.org"
            )
        return " ".join(sources)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL, e.g. sqlite:///./crmdeals.db") from None
        match url.get_backend_name():
            case "sqlite":
                if url.database in (None, "", ":memory:"):
                    raise ValueError(
                        "SQLite needs a file (an in-memory database is one per connection)"
                    )
            case "postgresql":
                if url.drivername != "postgresql":
                    raise ValueError("crmdeals picks the PostgreSQL drivers: write postgresql://")
                if not url.database:
                    raise ValueError("name the PostgreSQL database: postgresql://host/database")
            case _:
                raise ValueError("expected sqlite:///path or postgresql://host/database")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^rediss?://", value):
            raise ValueError("expected redis://host:port/db or rediss://...")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        """An absolute http(s) URL to put ``/panel?token=...`` after: no query or fragment
        (the path would not end the URL), no user name, nothing a browser would change."""
        if value is None:
            return None
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018  # raises for a port that is not one (0-65535)
        except ValueError:
            valid = False
        else:
            valid = (
                parts.scheme in ("http", "https")
                and bool(parts.hostname)
                and "@" not in parts.netloc
                and "?" not in value
                and "#" not in value
                and all(character.isprintable() and not character.isspace() for character in value)
            )
        if not valid:
            raise ValueError(
                "expected the absolute http:// or https:// URL browsers reach the server at, "
                "such as https://deals.example.com (a path may follow; no query or fragment)"
            )
        return value.rstrip("/")

    @cached_property
    def parsed_rate_limit(self) -> RateLimit | None:
        """The rate limit, or ``None`` when it is switched off."""
        return parse_rate_limit(self.rate_limit)
