"""Settings refuse unsafe or malformed values at start-up."""

import pytest
from pydantic import ValidationError

from crmdeals.settings import Settings


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "mysql://u@h/db",
        "not a url",
        "postgres",
        "postgresql://db.internal:5432",
        "postgresql+asyncpg://db.internal/crmdeals",
        "postgresql+psycopg://db.internal/crmdeals",
    ],
)
def test_database_url_must_name_a_sqlite_file_or_a_postgresql_database(url: str) -> None:
    with pytest.raises(ValidationError):
        Settings(database_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///./crmdeals.db",
        "postgresql://crmdeals:secret@db.internal:5432/crmdeals",
        "postgresql://db.internal/crmdeals",
    ],
)
def test_sqlite_files_and_postgresql_databases_are_accepted(url: str) -> None:
    assert Settings(database_url=url).database_url == url


@pytest.mark.parametrize("url", ["localhost:6379", "http://redis", "memory://"])
def test_redis_url_must_be_a_redis_url(url: str) -> None:
    with pytest.raises(ValidationError, match="redis://"):
        Settings(redis_url=url)


@pytest.mark.parametrize("key", ["A" * 32, "a" * 31, "a" * 33, "g" * 32, ""])
def test_bootstrap_key_must_look_like_a_key(key: str) -> None:
    with pytest.raises(ValidationError, match="32 lowercase hex"):
        Settings(bootstrap_key=key)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_body_bytes", 0),
        ("port", 70000),
        ("workers", 0),
        ("db_pool_size", 0),
        ("db_timeout", 0),
    ],
)
def test_numbers_out_of_range_are_refused(field: str, value: int) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({field: value})


def test_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMDEALS_RATE_LIMIT", "7/3s")
    monkeypatch.setenv("CRMDEALS_DATABASE_URL", "sqlite:////tmp/elsewhere.db")
    settings = Settings()
    assert settings.parsed_rate_limit is not None
    assert (settings.parsed_rate_limit.requests, settings.parsed_rate_limit.window_seconds) == (
        7,
        3,
    )
    assert settings.database_url == "sqlite:////tmp/elsewhere.db"


@pytest.mark.parametrize("key", ["", "short", "x" * 31])
def test_a_secret_key_has_at_least_32_characters(key: str) -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(secret_key=key)


def test_the_secret_key_is_never_shown() -> None:
    settings = Settings(secret_key="k" * 40)
    assert "k" * 40 not in repr(settings)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "k" * 40


@pytest.mark.parametrize(
    "sources",
    [
        "",
        "'none' https://a.example",
        "https://a.example; script-src *",
        "https://a.example,https://b.example",
        "'unsafe-inline'",
        "https://a.example/\npath",
        'https://a.example"',
        "javascript:",
    ],
)
def test_panel_frame_ancestors_must_be_csp_sources(sources: str) -> None:
    with pytest.raises(ValidationError, match="sources separated by spaces"):
        Settings(panel_frame_ancestors=sources)


@pytest.mark.parametrize(
    ("sources", "kept"),
    [
        ("'none'", "'none'"),
        ("'self'", "'self'"),
        ("https://chat.example.com", "https://chat.example.com"),
        (
            " 'self'   https://*.example.org:8443 https: ",
            "'self' https://*.example.org:8443 https:",
        ),
        ("chat.example.com *", "chat.example.com *"),
    ],
)
def test_panel_frame_ancestors_take_csp_sources(sources: str, kept: str) -> None:
    assert Settings(panel_frame_ancestors=sources).panel_frame_ancestors == kept


@pytest.mark.parametrize(
    "url",
    [
        "",
        "deals.example.com",
        "//deals.example.com",
        "ftp://deals.example.com",
        "javascript:alert(1)",
        "https://",
        "https://deals.example.com/?a=1",
        "https://deals.example.com?",
        "https://deals.example.com/#top",
        "https://user:secret@deals.example.com",
        "https://deals.example.com:99999",
        "https://deals.example.com/a b",
        "https://deals.example.com/\x00",
    ],
)
def test_public_url_must_be_an_absolute_http_url_without_query_or_fragment(url: str) -> None:
    with pytest.raises(ValidationError, match="absolute http:// or https:// URL"):
        Settings(public_url=url)


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://deals.example.com", "https://deals.example.com"),
        ("https://deals.example.com/crm/", "https://deals.example.com/crm"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_public_url_takes_http_urls_with_a_path(url: str, kept: str) -> None:
    assert Settings(public_url=url).public_url == kept


def test_public_url_is_unset_by_default_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().public_url is None
    monkeypatch.setenv("CRMDEALS_PUBLIC_URL", "https://deals.example.com")
    assert Settings().public_url == "https://deals.example.com"
