"""Contract fuzzing: schemathesis generates requests from the app's own ``/openapi.json``
(positive and negative cases, with a valid key) and checks every answer against it with all
of its default checks: no 5xx, only documented statuses, content types and headers, bodies
that fit their documented schema, schema-invalid requests refused and valid ones accepted.

Each test runs on SQLite and on PostgreSQL (the ``app`` fixture). The document is read from
an app built only for it; the requests go to the fixture's app. The sandbox's routes exist
(and are documented) only in sandbox mode, so a second test fuzzes them on a sandbox app.
Their faults answer 5xx on purpose, but only to ``/v3/`` routes, which that test never calls.
"""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import positive_data_acceptance

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from tests.conftest import KEY_A

EXAMPLES = 100
"""Examples per operation and database (hypothesis's default): the file takes about a minute."""
AUTHORIZATION = {"Authorization": f"Bearer {KEY_A}"}
_NEVER_OPENED = "sqlite:////nonexistent/only-the-openapi-document.db"


def _schema_of(*, sandbox: bool, modes: tuple[GenerationMode, ...] = tuple(GenerationMode)) -> Any:
    document_app = create_app(Settings(database_url=_NEVER_OPENED, sandbox=sandbox))
    schema = schemathesis.openapi.from_asgi("/openapi.json", document_app)
    schema.config.generation.update(modes=list(modes))
    return schema


api_schema = _schema_of(sandbox=False).exclude(method="PATCH", path="/v3/webhooks")
webhooks_schema = _schema_of(sandbox=False, modes=(GenerationMode.NEGATIVE,)).include(
    method="PATCH", path="/v3/webhooks"
)
"""``PATCH /v3/webhooks`` only with invalid bodies: a valid one makes the server resolve and
POST to the address it names (the test POST), which would leave the machine, and whose 400
(a refused or unanswering destination) the fuzzer would count as valid data refused. Valid
bodies are tested against a real receiver in ``tests/webhooks``."""
sandbox_schema = _schema_of(sandbox=True).include(path_regex="^/sandbox/")


def integers_as_written(value: Any) -> Any:
    """``value`` with every whole float (``2.0``) made an int (``2``).

    JSON Schema counts ``2.0`` as an integer, so schemathesis sends it in positive cases; the
    contract's integer ids are integer literals and ``2.0`` is refused (the OpenAPI document
    says so in words; ``test_raw_http`` checks that it gets 400). A positive
    case therefore sends the same numbers written as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [integers_as_written(item) for item in value]
    if isinstance(value, dict):
        return {key: integers_as_written(item) for key, item in value.items()}
    return value


NEEDS_ACCOUNT_DATA = {
    ("POST", "/v3/iframe"),  # a user of the account (INVALID_USER)
    ("POST", "/sandbox/messages"),  # a channel serving the chat (CHANNEL_NOT_FOUND)
    ("POST", "/sandbox/deal-button"),  # a user of the account (INVALID_USER)
}
"""Operations whose valid bodies must also name the account's data, which the fuzzer does
not make: their 400s for valid bodies are not counted as valid data refused (every other
check still applies; ``tests/webhooks`` and ``tests/api/test_iframe.py`` send them with the
data in place)."""


RESPONSE_TIMEOUT = 60
"""Seconds schemathesis waits for an answer (its own default is 10): a sandbox seed of
thousands of contacts on a shared, loaded machine may take longer, and these tests check
answers, never timings."""


def call_and_validate(case: Any, app: FastAPI) -> None:
    excluded = []
    if case.meta.generation.mode is GenerationMode.POSITIVE:
        case.body = integers_as_written(case.body)
        if (case.method, case.path) in NEEDS_ACCOUNT_DATA:
            excluded.append(positive_data_acceptance)
    case.call_and_validate(
        headers=AUTHORIZATION, app=app, excluded_checks=excluded, timeout=RESPONSE_TIMEOUT
    )


@pytest.fixture
def fuzzed_app(app: FastAPI) -> Iterator[FastAPI]:
    """The test's app; schemathesis runs it (startup on the first request) on an event loop
    of its own, and shuts it down (its database connections closed) after the test."""
    yield app
    shutdown_lifespans()


@pytest.fixture
def fuzzed_sandbox_app(settings: Settings, store: Store) -> Iterator[FastAPI]:
    """The same in sandbox mode, without a user limit: the seeds of one test's examples
    pile up on one account, and a seed's users count against the limit (a seed past it is
    refused, as an upload is; ``test_sandbox`` checks that)."""
    yield create_app(settings.model_copy(update={"sandbox": True, "user_limit": 0}))
    shutdown_lifespans()


@api_schema.parametrize()  # type: ignore[untyped-decorator]
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_route_keeps_to_the_openapi_document(case: Any, fuzzed_app: FastAPI) -> None:
    call_and_validate(case, fuzzed_app)


@webhooks_schema.parametrize()  # type: ignore[untyped-decorator]
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_invalid_webhook_settings_are_refused_as_documented(case: Any, fuzzed_app: FastAPI) -> None:
    call_and_validate(case, fuzzed_app)


@sandbox_schema.parametrize()  # type: ignore[untyped-decorator]
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_sandbox_route_keeps_to_the_openapi_document(
    case: Any, fuzzed_sandbox_app: FastAPI
) -> None:
    call_and_validate(case, fuzzed_sandbox_app)
