"""The crm key: set by ``PUT /sandbox/crm-key`` (sandbox mode) or ``crmdeals accounts crm-key``,
sent as ``Bearer`` with the test POST to a real receiving server, held to one rule (16-200
printable ASCII characters without spaces), and never in an answer, an error or a log."""

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from crmdeals.app import create_app
from crmdeals.cli import app as cli
from crmdeals.settings import Settings
from crmdeals.storage import Store
from crmdeals.testing.receiver import WebhookReceiver
from tests.api.test_errors import assert_envelope
from tests.conftest import KEY_A

CRM_KEY = "Crm-Key_0123456789~!#$%&'()*+,./:;<=>?@[]^`{|}"
INVALID_KEYS = [
    "k" * 15,
    "k" * 201,
    "sixteen chars ok",  # a space
    "tab\tinside0123456789",
    "trailing-newline-01234\n",
    "ключ-0123456789abcdef",
    "nul\u0000inside0123456789",
    "del\u007finside0123456789",
    "",
]


def put_key(client: TestClient, crm_key: str | None) -> None:
    response = client.put("/sandbox/crm-key", json={"crmKey": crm_key})
    assert response.status_code == 204, response.text
    assert response.content == b""


def sent_authorization(client: TestClient, receiver: WebhookReceiver) -> str | None:
    """The ``Authorization`` header of a test POST the account makes now (``None``: none)."""
    receiver.clear()
    response = client.patch("/v3/webhooks", json={"webhooksUri": receiver.url})
    assert response.status_code == 200, response.text
    [request] = receiver.requests
    return request.headers.get("authorization")


# -- PUT /sandbox/crm-key ---------------------------------------------------------------------


def test_a_key_set_is_sent_as_bearer_and_null_clears_it(
    a: TestClient, receiver: WebhookReceiver
) -> None:
    assert sent_authorization(a, receiver) is None
    put_key(a, CRM_KEY)
    assert sent_authorization(a, receiver) == f"Bearer {CRM_KEY}"
    put_key(a, "k" * 16)
    assert sent_authorization(a, receiver) == f"Bearer {'k' * 16}"
    put_key(a, None)
    assert sent_authorization(a, receiver) is None


@pytest.mark.parametrize("crm_key", ["k" * 16, "k" * 200, "!" * 16, "~" * 16], ids=len)
def test_keys_at_the_limits_are_accepted(
    a: TestClient, receiver: WebhookReceiver, crm_key: str
) -> None:
    put_key(a, crm_key)
    assert sent_authorization(a, receiver) == f"Bearer {crm_key}"


@pytest.mark.parametrize(
    "crm_key", [*INVALID_KEYS, 1234567890123456789, True, ["k" * 16]], ids=repr
)
def test_an_invalid_key_is_refused_without_being_repeated(
    a: TestClient, receiver: WebhookReceiver, crm_key: Any
) -> None:
    put_key(a, CRM_KEY)
    response = a.put("/sandbox/crm-key", json={"crmKey": crm_key})
    error = assert_envelope(response, 400, "INVALID_REQUEST")
    assert list(error["data"]["fields"]) == ["crmKey"]  # type: ignore[index]
    if isinstance(crm_key, str) and crm_key:
        assert crm_key not in response.text
        assert json.dumps(crm_key)[1:-1] not in response.text
    assert sent_authorization(a, receiver) == f"Bearer {CRM_KEY}"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{}", "INVALID_REQUEST"),
        (b'["' + b"k" * 20 + b'"]', "INVALID_REQUEST"),
        (b'"' + b"k" * 20 + b'"', "INVALID_REQUEST"),
        (b"null", "INVALID_REQUEST"),
        (b"", "INVALID_JSON"),
        (b'{"crmKey": "' + b"k" * 20, "INVALID_JSON"),
    ],
    ids=repr,
)
def test_a_body_that_is_not_an_object_with_crm_key_is_refused(
    a: TestClient, receiver: WebhookReceiver, body: bytes, code: str
) -> None:
    put_key(a, CRM_KEY)
    response = a.put("/sandbox/crm-key", content=body)
    assert_envelope(response, 400, code)
    assert "k" * 20 not in response.text
    assert sent_authorization(a, receiver) == f"Bearer {CRM_KEY}"


def test_each_account_has_its_own_key(
    a: TestClient, b: TestClient, receiver: WebhookReceiver
) -> None:
    put_key(a, CRM_KEY)
    assert sent_authorization(b, receiver) is None


def test_the_key_never_reaches_an_answer_or_the_logs(
    a: TestClient, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    answers = [a.put("/sandbox/crm-key", json={"crmKey": CRM_KEY})]
    answers += [a.get("/v3/webhooks"), a.get("/crmdeals/deliveries")]
    receiver.fail(1)
    answers.append(a.patch("/v3/webhooks", json={"webhooksUri": receiver.url}))
    answers.append(a.get("/crmdeals/deliveries"))
    answers.append(a.put("/sandbox/crm-key", json={"crmKey": CRM_KEY + " "}))
    assert receiver.requests[0].headers["authorization"] == f"Bearer {CRM_KEY}"
    for answer in answers:
        assert CRM_KEY not in answer.text
        assert CRM_KEY not in str(answer.headers)
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert "crmdeals.access" in logged
    assert CRM_KEY not in logged


def test_the_sandbox_reset_keeps_the_key(a: TestClient, receiver: WebhookReceiver) -> None:
    put_key(a, CRM_KEY)
    assert a.post("/sandbox/reset").status_code == 200
    assert sent_authorization(a, receiver) == f"Bearer {CRM_KEY}"


def test_outside_sandbox_mode_the_route_does_not_exist(client: TestClient) -> None:
    response = client.put("/sandbox/crm-key", json={"crmKey": CRM_KEY})
    assert_envelope(response, 404, "NOT_FOUND")


# -- crmdeals accounts crm-key -----------------------------------------------------------------

Command = Callable[..., Result]
"""``command(*args, stdin="")`` runs ``crmdeals accounts crm-key ARGS`` on the database."""


@pytest.fixture
def command(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Command:
    monkeypatch.chdir(tmp_path)  # no stray `.env` file is read
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("CRMDEALS_")}
    env.update(CRMDEALS_DATABASE_URL=database_url, COLUMNS="200")
    runner = CliRunner()

    def run(*args: str, stdin: str = "") -> Result:
        return runner.invoke(cli, ["accounts", "crm-key", *args], input=stdin, env=env)

    return run


@pytest.fixture
def private(settings: Settings, store: Store) -> Iterator[TestClient]:
    """Account A on an app that may send to the receiver, outside sandbox mode."""
    allowed = settings.model_copy(update={"webhooks_allow_private": True})
    headers = {"Authorization": f"Bearer {KEY_A}"}
    with TestClient(create_app(allowed), headers=headers) as client:
        yield client


def test_the_command_sets_the_key_from_stdin_and_clears_it(
    command: Command, private: TestClient, receiver: WebhookReceiver
) -> None:
    result = command("a", "--set", stdin=CRM_KEY + "\n")
    assert result.exit_code == 0, result.output
    assert CRM_KEY not in result.output
    assert sent_authorization(private, receiver) == f"Bearer {CRM_KEY}"
    result = command("a", "--clear")
    assert result.exit_code == 0, result.output
    assert sent_authorization(private, receiver) is None


def test_the_command_reads_one_line_without_its_line_end(
    command: Command, private: TestClient, receiver: WebhookReceiver
) -> None:
    result = command("a", "--set", stdin=CRM_KEY + "\r\nthe second line is not read\n")
    assert result.exit_code == 0, result.output
    assert sent_authorization(private, receiver) == f"Bearer {CRM_KEY}"


@pytest.mark.parametrize("crm_key", [key for key in INVALID_KEYS if "\n" not in key], ids=repr)
def test_the_command_refuses_an_invalid_key_in_one_line_without_repeating_it(
    command: Command, private: TestClient, receiver: WebhookReceiver, crm_key: str
) -> None:
    assert command("a", "--set", stdin=CRM_KEY).exit_code == 0
    result = command("a", "--set", stdin=crm_key + "\n")
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "printable ASCII" in result.output
    if crm_key:
        assert crm_key not in result.output
    assert sent_authorization(private, receiver) == f"Bearer {CRM_KEY}"


@pytest.mark.parametrize("options", [[], ["--set", "--clear"]], ids=repr)
def test_the_command_needs_set_or_clear(command: Command, store: Store, options: list[str]) -> None:
    result = command("a", *options, stdin=CRM_KEY)
    assert result.exit_code == 2, result.output
    assert "--set" in result.output
    assert "--clear" in result.output
    assert CRM_KEY not in result.output


def test_the_command_names_an_unknown_account(command: Command, store: Store) -> None:
    result = command("nobody", "--clear")
    assert result.exit_code == 1, result.output
    assert "nobody" in result.output
