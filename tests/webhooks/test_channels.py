"""GET /v3/channels, and the two ways to put an account's channels: ``PUT /sandbox/channels``
(sandbox mode) and ``crmdeals channels set``. Every rule of the body, all or nothing; a kept
channel's new state queues one ``channelsUpdates`` delivery when the switch is on, in the
replacement's own transaction, and a real receiving server gets it."""

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from crmdeals.cli import app as cli
from crmdeals.storage import Store
from crmdeals.testing.receiver import WebhookReceiver
from tests.api.test_errors import assert_envelope

UPPER_ID = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
CANONICAL_ID = UPPER_ID.lower()
OTHER_ID = "00000000-0000-0000-0000-000000000000"


def put(client: TestClient, channels: Any) -> list[dict[str, Any]]:
    response = client.put("/sandbox/channels", json=channels)
    assert response.status_code == 200, response.text
    stored: list[dict[str, Any]] = response.json()
    assert stored == listed(client)
    return stored


def listed(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v3/channels")
    assert response.status_code == 200, response.text
    channels: list[dict[str, Any]] = response.json()
    return channels


def log(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/crmdeals/deliveries")
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def assert_refused(client: TestClient, body: Any, code: str, *, raw: bool = False) -> Any:
    """PUT ``body`` (JSON-encoded unless ``raw``); expect 400 ``code`` and the channels and
    the delivery log unchanged. The error's ``data``."""
    before, logged = listed(client), log(client)
    response = client.put("/sandbox/channels", content=body if raw else json.dumps(body))
    error = assert_envelope(response, 400, code)
    assert listed(client) == before
    assert log(client) == logged
    return error.get("data")


def switch_channels_updates(client: TestClient, receiver: WebhookReceiver, on: bool) -> None:
    """Point the account at the receiver with ``channelsUpdates`` ``on``; forget the test
    POST."""
    body = {"webhooksUri": receiver.url, "subscriptions": {"channelsUpdates": on}}
    assert client.patch("/v3/webhooks", json=body).status_code == 200
    receiver.clear()


def channels_updates(client: TestClient) -> list[dict[str, Any]]:
    """The bodies of the account's ``channelsUpdates`` deliveries, oldest first."""
    return [entry["body"] for entry in reversed(log(client)) if entry["kind"] == "channelsUpdates"]


@pytest.fixture
def stored(a: TestClient) -> list[dict[str, Any]]:
    """Account A holds two channels, so that a refused PUT has something to keep."""
    return put(
        a,
        [
            {"channelId": UPPER_ID, "transport": "whatsapp", "plainId": "79001234567"},
            {"transport": "telegram", "state": "qr", "name": "Support"},
        ],
    )


# -- GET /v3/channels and a PUT that passes ----------------------------------------------------


def test_a_new_account_has_no_channels(client: TestClient) -> None:
    response = client.get("/v3/channels")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == []


def test_channels_are_stored_normalised_with_every_key(
    a: TestClient, stored: list[dict[str, Any]]
) -> None:
    first, second = stored
    assert first == {
        "channelId": CANONICAL_ID,
        "transport": "whatsapp",
        "plainId": "79001234567",
        "state": "active",
        "name": None,
    }
    assert uuid.UUID(second.pop("channelId")).version == 4
    assert second == {"transport": "telegram", "plainId": None, "state": "qr", "name": "Support"}


def test_a_channel_id_is_any_uuid_in_any_accepted_form(a: TestClient) -> None:
    ids = [UPPER_ID.replace("-", ""), OTHER_ID, str(uuid.uuid1())]
    channels = put(a, [{"channelId": channel_id, "transport": "vk"} for channel_id in ids])
    assert [channel["channelId"] for channel in channels] == [CANONICAL_ID, OTHER_ID, ids[2]]


def test_null_is_the_same_as_leaving_a_field_out(a: TestClient) -> None:
    body = [{"channelId": None, "transport": "max", "plainId": None, "state": None, "name": None}]
    [channel] = put(a, body)
    assert uuid.UUID(channel["channelId"]).version == 4
    assert (channel["plainId"], channel["state"], channel["name"]) == (None, "active", None)


def test_a_put_replaces_the_whole_set_in_its_order(
    a: TestClient, stored: list[dict[str, Any]]
) -> None:
    kept = dict(stored[0], name="Renamed")
    channels = put(a, [{"transport": "avito"}, kept])
    assert channels[1] == kept
    assert [channel["transport"] for channel in channels] == ["avito", "whatsapp"]
    assert put(a, []) == []


def test_what_get_returns_puts_back_unchanged(a: TestClient, stored: list[dict[str, Any]]) -> None:
    assert put(a, listed(a)) == stored


def test_the_longest_values_and_100_channels_are_accepted(a: TestClient) -> None:
    body = [
        {"transport": "viber", "plainId": "p" * 100, "name": "é" * 200, "state": "blocked"}
        for _ in range(100)
    ]
    channels = put(a, body)
    assert len(channels) == 100
    assert len({channel["channelId"] for channel in channels}) == 100
    assert channels[99]["plainId"] == "p" * 100
    assert channels[99]["name"] == "é" * 200


def test_fields_the_contract_does_not_name_are_ignored(a: TestClient) -> None:
    [channel] = put(a, [{"transport": "wapi", "color": ["x", {"y": "\u0000"}]}])
    assert set(channel) == {"channelId", "transport", "plainId", "state", "name"}


def test_each_account_has_its_own_channels(
    a: TestClient, b: TestClient, stored: list[dict[str, Any]]
) -> None:
    assert listed(b) == []
    put(b, [{"channelId": UPPER_ID, "transport": "vk"}])  # the same id in another account
    assert listed(a) == stored
    put(b, [])
    assert listed(a) == stored


# -- refused, and nothing changed --------------------------------------------------------------


def test_more_than_100_channels_are_refused(a: TestClient, stored: list[dict[str, Any]]) -> None:
    data = assert_refused(a, [{"transport": "vk"}] * 101, "TOO_MANY_ENTITIES")
    assert data == {"limit": 100, "count": 101}


@pytest.mark.parametrize(
    ("channel", "field"),
    [
        ({}, "transport"),
        ({"transport": "sms"}, "transport"),
        ({"transport": None}, "transport"),
        ({"transport": "vk", "state": "sleeping"}, "state"),
        ({"transport": "vk", "channelId": "not-a-uuid"}, "channelId"),
        ({"transport": "vk", "channelId": "{" + CANONICAL_ID + "}"}, "channelId"),
        ({"transport": "vk", "channelId": 7}, "channelId"),
        ({"transport": "vk", "plainId": ""}, "plainId"),
        ({"transport": "vk", "plainId": "p" * 101}, "plainId"),
        ({"transport": "vk", "plainId": 79001234567}, "plainId"),
        ({"transport": "vk", "name": ""}, "name"),
        ({"transport": "vk", "name": "n" * 201}, "name"),
        ({"transport": "vk", "name": "a\u0000b"}, "name"),
    ],
    ids=repr,
)
def test_an_invalid_field_is_refused_and_named_by_its_path(
    a: TestClient, stored: list[dict[str, Any]], channel: dict[str, Any], field: str
) -> None:
    data = assert_refused(a, [{"transport": "vk"}, channel], "INVALID_REQUEST")
    assert list(data["fields"]) == [f"body[1].{field}"]


def test_every_invalid_item_is_named(a: TestClient, stored: list[dict[str, Any]]) -> None:
    body = [{"transport": "sms", "name": ""}, "vk", None, {"transport": "vk"}]
    data = assert_refused(a, body, "INVALID_REQUEST")
    assert list(data["fields"]) == ["body[0].transport", "body[0].name", "body[1]", "body[2]"]


@pytest.mark.parametrize("second", [CANONICAL_ID, UPPER_ID, UPPER_ID.replace("-", "")])
def test_a_channel_id_twice_is_refused_naming_the_index(
    a: TestClient, stored: list[dict[str, Any]], second: str
) -> None:
    body = [
        {"channelId": CANONICAL_ID, "transport": "vk"},
        {"transport": "vk"},
        {"channelId": second, "transport": "max"},
    ]
    data = assert_refused(a, body, "INVALID_REQUEST")
    assert data["fields"] == {"body[2].channelId": "The same channelId as body[0]"}


@pytest.mark.parametrize("body", [{"transport": "vk"}, "vk", 1, None], ids=repr)
def test_a_body_that_is_not_an_array_is_refused(
    a: TestClient, stored: list[dict[str, Any]], body: Any
) -> None:
    data = assert_refused(a, body, "INVALID_REQUEST")
    assert list(data["fields"]) == ["body"]


@pytest.mark.parametrize("body", [b"", b"[", b"\xff", b"[{'transport': 'vk'}]"], ids=repr)
def test_a_body_that_is_not_json_is_refused(
    a: TestClient, stored: list[dict[str, Any]], body: bytes
) -> None:
    assert_refused(a, body, "INVALID_JSON", raw=True)


def test_outside_sandbox_mode_the_route_does_not_exist(client: TestClient) -> None:
    assert_envelope(client.put("/sandbox/channels", json=[]), 404, "NOT_FOUND")
    assert listed(client) == []


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v3/channels"), ("PUT", "/sandbox/channels")]
)
def test_channels_need_a_valid_key(
    sandboxed: TestClient, a: TestClient, stored: list[dict[str, Any]], method: str, path: str
) -> None:
    for headers in ({}, {"Authorization": f"Bearer {'c' * 32}"}):
        response = sandboxed.request(method, path, json=[], headers=headers)
        assert_envelope(response, 401, "UNAUTHORIZED")
    assert listed(a) == stored


def test_the_sandbox_reset_removes_the_accounts_channels_only(
    a: TestClient, b: TestClient, stored: list[dict[str, Any]]
) -> None:
    kept = put(b, [{"transport": "vk"}])
    assert a.post("/sandbox/reset").status_code == 200
    assert listed(a) == []
    assert listed(b) == kept


# -- channelsUpdates ---------------------------------------------------------------------------


def test_a_new_state_under_the_same_id_queues_one_channels_updates(
    a: TestClient, receiver: WebhookReceiver, stored: list[dict[str, Any]]
) -> None:
    switch_channels_updates(a, receiver, True)
    first, second = stored
    before = int(time.time() * 1000)
    put(
        a,
        [
            {"transport": "vk"},  # new: nothing
            dict(second, state="disabled"),
            dict(first, state="qr", name="renamed"),
        ],
    )
    after = int(time.time() * 1000)
    [body] = channels_updates(a)
    updates = body["channelsUpdates"]
    assert [(update["channelId"], update["state"]) for update in updates] == [
        (second["channelId"], "disabled"),
        (first["channelId"], "qr"),
    ]
    assert before <= updates[0]["timestamp"] == updates[1]["timestamp"] <= after
    [request] = receiver.wait_for(1, kind="channelsUpdates")
    assert request.json() == body


def test_no_channels_updates_without_a_new_state(
    a: TestClient, receiver: WebhookReceiver, stored: list[dict[str, Any]]
) -> None:
    switch_channels_updates(a, receiver, True)
    first, second = stored
    put(a, [dict(first, name="renamed", plainId=None)])  # second removed, first's state kept
    put(a, [first, dict(second, transport="vk")])  # second back: new again
    put(a, [first, {"channelId": second["channelId"], "transport": "vk", "state": "qr"}])
    assert channels_updates(a) == []


def test_no_channels_updates_while_the_switch_is_off(
    a: TestClient, receiver: WebhookReceiver, stored: list[dict[str, Any]]
) -> None:
    switch_channels_updates(a, receiver, False)
    put(a, [dict(stored[0], state="disabled")])
    assert channels_updates(a) == []
    switch_channels_updates(a, receiver, True)
    put(a, [dict(stored[0], state="active")])
    assert [body["channelsUpdates"][0]["state"] for body in channels_updates(a)] == ["active"]


def test_a_refused_put_queues_nothing(
    a: TestClient, receiver: WebhookReceiver, stored: list[dict[str, Any]]
) -> None:
    switch_channels_updates(a, receiver, True)
    assert_refused(a, [dict(stored[0], state="disabled"), {"transport": "sms"}], "INVALID_REQUEST")
    assert channels_updates(a) == []


# -- crmdeals channels set ---------------------------------------------------------------------

Command = Callable[..., Result]
"""``command(*args, stdin="")`` runs ``crmdeals channels set ARGS`` on the database."""


@pytest.fixture
def command(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Command:
    monkeypatch.chdir(tmp_path)  # no stray `.env` file is read; FILE is relative to it
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("CRMDEALS_")}
    env.update(CRMDEALS_DATABASE_URL=database_url, COLUMNS="200")
    runner = CliRunner()

    def run(*args: str, stdin: str = "") -> Result:
        return runner.invoke(cli, ["channels", "set", *args], input=stdin, env=env)

    return run


def test_the_command_puts_a_files_channels_and_prints_them(
    command: Command, a: TestClient, tmp_path: Path
) -> None:
    (tmp_path / "channels.json").write_text(
        json.dumps([{"channelId": UPPER_ID, "transport": "whatsapp"}, {"transport": "vk"}])
    )
    result = command("a", "channels.json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed == listed(a)
    assert printed[0]["channelId"] == CANONICAL_ID
    assert uuid.UUID(printed[1]["channelId"]).version == 4
    assert "2 channels" in result.stderr


def test_the_command_reads_stdin_for_a_dash_and_queues_channels_updates(
    command: Command, a: TestClient, receiver: WebhookReceiver, stored: list[dict[str, Any]]
) -> None:
    switch_channels_updates(a, receiver, True)
    result = command("a", "-", stdin=json.dumps([dict(stored[0], state="unauthorized")]))
    assert result.exit_code == 0, result.output
    assert [channel["state"] for channel in listed(a)] == ["unauthorized"]
    [body] = channels_updates(a)
    assert body["channelsUpdates"][0]["channelId"] == CANONICAL_ID
    receiver.wait_for(1, kind="channelsUpdates")


@pytest.mark.parametrize(
    "content",
    [
        "[{",
        "{}",
        json.dumps([{"transport": "sms"}]),
        json.dumps([{"channelId": UPPER_ID, "transport": "vk"}] * 2),
        json.dumps([{"transport": "vk"}] * 101),
    ],
    ids=["not json", "not an array", "invalid", "repeated id", "101"],
)
def test_the_command_refuses_an_invalid_file_and_changes_nothing(
    command: Command, a: TestClient, stored: list[dict[str, Any]], content: str
) -> None:
    result = command("a", "-", stdin=content)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "error:" in result.stderr
    assert listed(a) == stored


def test_the_command_names_a_missing_file_and_an_unknown_account(
    command: Command, store: Store, tmp_path: Path
) -> None:
    missing = command("a", "missing.json")
    assert missing.exit_code == 2, missing.output
    assert "missing.json" in missing.output
    (tmp_path / "channels.json").write_text("[]")
    unknown = command("nobody", "channels.json")
    assert unknown.exit_code == 1, unknown.output
    assert "nobody" in unknown.output
