"""A Hypothesis state machine drives webhook settings, channels and status events of one
account of a sandbox app (SQLite and PostgreSQL) against a real receiving server, and
checks every answer, ``GET /v3/webhooks``, ``GET /v3/channels`` and the delivery log
against a plain model of the contract (CRM sections 5, 6, 7 and 9), written from the
contract alone:

- a ``PATCH /v3/webhooks`` with a bad body changes nothing; a valid one sends a test POST
  (logged as a delivery of kind ``test``), then saves the address and the switches it
  names, the others keeping their values;
- ``PUT /sandbox/channels`` replaces the channels, and sends one ``channelsUpdates`` when
  the switch is on, an address is set and a kept channel's state changed;
- a status event sends ``statuses`` when ``messagesAndStatuses`` is on and an address is
  set; nothing otherwise.
"""

from collections import Counter
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from crmdeals.app import create_app
from crmdeals.settings import Settings
from crmdeals.storage import Store
from crmdeals.testing.receiver import WebhookReceiver
from tests.conftest import KEY_A, client_of

SWITCHES = ("messagesAndStatuses", "contactsAndDealsCreation", "channelsUpdates", "templateStatus")
CHANNEL_IDS = [f"00000000-0000-4000-8000-00000000000{n}" for n in range(3)]
STATES = ["active", "disabled", "qr"]
BAD_URIS = [None, "", "crm.example.com/hook", "ftp://x.example/", "http://", 7, "h" * 201]

switches = st.dictionaries(st.sampled_from(SWITCHES), st.booleans())
bad_switches: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.sampled_from(SWITCHES), st.sampled_from(["true", 1, None, [], {}]), min_size=1
)
channels = st.lists(
    st.fixed_dictionaries(
        {
            "channelId": st.sampled_from(CHANNEL_IDS),
            "transport": st.sampled_from(["whatsapp", "telegram"]),
            "state": st.sampled_from(STATES),
        }
    ),
    max_size=3,
    unique_by=lambda channel: channel["channelId"],
)


class WebhooksApi(RuleBasedStateMachine):
    client: ClassVar[TestClient]
    receiver: ClassVar[WebhookReceiver]

    def __init__(self) -> None:
        super().__init__()
        assert self.client.post("/sandbox/reset").status_code == 200
        self.uri: str | None = None
        self.switches = dict.fromkeys(SWITCHES, False)
        self.channels: list[dict[str, Any]] = []
        self.sent: Counter[str] = Counter()

    @rule(query=st.sampled_from(["", "?account=42", "?a=1&b=%20"]), changed=switches)
    def set_webhooks(self, query: str, changed: dict[str, bool]) -> None:
        uri = self.receiver.url + query
        response = self.client.patch(
            "/v3/webhooks", json={"webhooksUri": uri, "subscriptions": changed}
        )
        assert (response.status_code, response.json()) == (200, {"ok": True})
        self.uri = uri
        self.switches.update(changed)
        self.sent["test"] += 1

    @rule(uri=st.sampled_from(BAD_URIS), changed=switches)
    def set_a_bad_address(self, uri: Any, changed: dict[str, bool]) -> None:
        response = self.client.patch(
            "/v3/webhooks", json={"webhooksUri": uri, "subscriptions": changed}
        )
        assert (response.status_code, response.json()["error"]) == (400, "uriNotValid")

    @rule(changed=bad_switches)
    def set_bad_switches(self, changed: dict[str, Any]) -> None:
        response = self.client.patch(
            "/v3/webhooks", json={"webhooksUri": self.receiver.url, "subscriptions": changed}
        )
        assert (response.status_code, response.json()["error"]) == (400, "INVALID_REQUEST")

    @rule(new=channels)
    def put_channels(self, new: list[dict[str, Any]]) -> None:
        response = self.client.put("/sandbox/channels", json=new)
        assert response.status_code == 200, response.text
        before = {channel["channelId"]: channel["state"] for channel in self.channels}
        changed = [c for c in new if before.get(c["channelId"], c["state"]) != c["state"]]
        if changed and self.switches["channelsUpdates"] and self.uri is not None:
            self.sent["channelsUpdates"] += 1
        self.channels = [{**channel, "plainId": None, "name": None} for channel in new]
        assert response.json() == self.channels

    @rule(status=st.sampled_from(["sent", "delivered", "read"]))
    def send_a_status(self, status: str) -> None:
        response = self.client.post("/sandbox/statuses", json={"status": status})
        assert response.status_code == 200, response.text
        sends = self.switches["messagesAndStatuses"] and self.uri is not None
        assert [ref["kind"] for ref in response.json()["deliveries"]] == (
            ["statuses"] if sends else []
        )
        self.sent["statuses"] += sends

    @invariant()
    def the_settings_channels_and_log_are_the_models(self) -> None:
        expected_settings = {
            "webhooksUri": self.uri,
            "subscriptions": {
                **self.switches,
                "wabaTemplatesStatus": self.switches["templateStatus"],
            },
        }
        assert self.client.get("/v3/webhooks").json() == expected_settings
        assert self.client.get("/v3/channels").json() == self.channels
        logged = Counter(
            item["kind"] for item in self.client.get("/crmdeals/deliveries").json()["data"]
        )
        assert logged == self.sent


@pytest.fixture
def sandbox_client(settings: Settings, store: Store) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"sandbox": True}))
    with TestClient(app) as served:
        yield from client_of(served, KEY_A)


def test_webhook_settings_channels_and_events_behave_like_the_model(
    sandbox_client: TestClient,
) -> None:
    with WebhookReceiver() as receiver:
        WebhooksApi.client = sandbox_client
        WebhooksApi.receiver = receiver
        run_state_machine_as_test(
            WebhooksApi,
            settings=settings(
                max_examples=15,
                stateful_step_count=15,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            ),
        )
