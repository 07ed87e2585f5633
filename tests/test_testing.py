"""The pytest plugin and ``SandboxServer``, as an integrator uses them: the README's test
files run and pass in a pytest of their own (``pytester``), and so do the fixtures' promises."""

from datetime import datetime

import httpx
import pytest

from crmdeals.testing import SandboxServer, WebhookReceiver
from tests.readme import integration_test_example, webhook_test_example

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.e2e


def test_the_readme_example_passes_in_a_pytest_of_its_own(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_integration=integration_test_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1)


def test_the_fixture_is_reset_between_tests_and_shared_by_the_session(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_sandbox="""
        import httpx

        URLS = set()

        def deals(server):
            headers = {"Authorization": f"Bearer {server.api_key}"}
            return httpx.get(f"{server.url}/v3/deals", headers=headers).json()["count"]

        def test_first(crmdeals_server):
            URLS.add(crmdeals_server.url)
            assert crmdeals_server.seed(150) == 150
            crmdeals_server.fail_next(None, delay_ms=1, times=5)
            assert deals(crmdeals_server) == 150

        def test_second_starts_empty(crmdeals_server):
            URLS.add(crmdeals_server.url)
            assert deals(crmdeals_server) == 0
            assert crmdeals_server.faults() == []
            assert [r["path"] for r in crmdeals_server.requests()] == ["/v3/deals"]
            assert len(URLS) == 1
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=2)


def test_sandbox_server_without_pytest_fixtures() -> None:
    with SandboxServer(rate_limit="off") as server:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        assert server.seed(10, seed=3) == 10
        fault = server.fail_next(429, route="GET /v3/deals", retry_after=2, times=2)
        assert fault["times"] == 2
        answers = [httpx.get(f"{server.url}/v3/deals", headers=headers) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [429, 429, 200]
        assert answers[0].headers["retry-after"] == "2"
        assert [r["error"] for r in server.requests(limit=3)] == [
            None,
            "TOO_MANY_REQUESTS",
            "TOO_MANY_REQUESTS",
        ]
        url = server.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz")  # stopped


def test_the_fixture_seeds_users_and_contacts_and_reads_everything_back(
    pytester: pytest.Pytester,
) -> None:
    """What an integrator checks after their code ran: the account's deals, users and
    contacts (read across pages) and the drift report; a seeded account has no drift, and
    the next test starts without any of it."""
    pytester.makepyfile(
        test_entities="""
        import httpx

        def test_a_seeded_account_names_only_what_it_holds(crmdeals_server):
            assert crmdeals_server.seed(150, seed=4, users=5, contacts=120) == 150
            users = crmdeals_server.users()
            contacts = crmdeals_server.contacts()
            deals = crmdeals_server.deals()
            assert (len(users), len(contacts), len(deals)) == (5, 120, 150)
            assert [(u["name"], u["id"]) for u in users] == sorted(
                (u["name"], u["id"]) for u in users
            )
            assert [c["id"] for c in contacts] == sorted(c["id"] for c in contacts)
            assert {d["responsibleUserId"] for d in deals} <= {u["id"] for u in users}
            assert crmdeals_server.drift() == []

        def test_drift_names_what_the_integration_forgot(crmdeals_server):
            headers = {"Authorization": f"Bearer {crmdeals_server.api_key}"}
            deal = {
                "id": "crm-1",
                "responsibleUserId": "rep-7",
                "name": "Renewal",
                "contacts": ["c-1"],
                "closed": False,
            }
            httpx.post(f"{crmdeals_server.url}/v3/deals", json=[deal], headers=headers)
            user = {"id": "rep-7", "name": "Rep", "phone": "79001234567"}
            httpx.post(f"{crmdeals_server.url}/v3/users", json=[user], headers=headers)
            assert crmdeals_server.drift() == [
                {"entity": "deal", "id": "crm-1", "field": "contacts", "missing": ["c-1"]}
            ]
            assert crmdeals_server.users() == [user]
            assert crmdeals_server.deals() == [deal | {"uri": None}]
            assert crmdeals_server.contacts() == []

        def test_the_next_test_starts_without_them(crmdeals_server):
            assert crmdeals_server.users() == []
            assert crmdeals_server.contacts() == []
            assert crmdeals_server.deals() == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=3)


def test_the_readmes_webhook_example_passes_in_a_pytest_of_its_own(
    pytester: pytest.Pytester,
) -> None:
    """A message from a new chat, with the CRM failing twice, creating a contact and a deal."""
    pytester.makepyfile(test_webhooks=webhook_test_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1)


def test_the_webhook_fixtures_start_each_test_without_an_address_key_or_deliveries(
    pytester: pytest.Pytester,
) -> None:
    """The crm key the first test sets reaches the CRM, and not the next test's: the
    fixture clears it though the server's reset keeps it."""
    pytester.makepyfile(
        test_webhook_fixtures="""
        import httpx

        KEY = "crm-key-0123456789abcdef"

        def test_the_crm_key_and_every_event_reach_the_crm(crmdeals_server, webhook_receiver):
            crmdeals_server.set_crm_key(KEY)
            crmdeals_server.set_webhooks(webhook_receiver.url)
            [channel] = crmdeals_server.set_channels([{"transport": "telegram"}])
            headers = {"Authorization": f"Bearer {crmdeals_server.api_key}"}
            user = {"id": "rep-1", "name": "Anna"}
            httpx.post(f"{crmdeals_server.url}/v3/users", json=[user], headers=headers)
            status = crmdeals_server.send_status("read", message_id="m-1")
            click = crmdeals_server.click_deal_button("rep-1", "telegram", "5551234")
            assert [ref["kind"] for ref in click["deliveries"]] == ["createContact", "createDeal"]
            [delivered] = crmdeals_server.wait_for_deliveries(status)
            [sent] = delivered["body"]["statuses"]
            assert (sent["messageId"], sent["status"]) == ("m-1", "read")
            # the CRM answered {} to createContact: not a contact, so no deal is sent
            contact, deal = crmdeals_server.wait_for_deliveries(click)
            assert (contact["state"], contact["lastStatus"]) == ("failed", 200)
            assert (deal["state"], deal["attempts"]) == ("failed", 0)
            create = webhook_receiver.wait_for(1, kind="createContact")[0].json()
            assert create["createContact"]["contactData"][0]["chatId"] == "5551234"
            assert {r.headers["authorization"] for r in webhook_receiver.requests} == {
                f"Bearer {KEY}"
            }
            log = crmdeals_server.deliveries()
            assert [d["kind"] for d in log] == ["createDeal", "createContact", "statuses", "test"]
            assert crmdeals_server.delivery(log[1]["id"]) == contact
            assert (channel["transport"], len(channel["channelId"])) == ("telegram", 36)

        def test_the_next_test_starts_afresh(crmdeals_server, webhook_receiver):
            assert crmdeals_server.deliveries() == []
            skipped = crmdeals_server.send_status("read")
            assert skipped["skipped"] == [{"kind": "statuses", "reason": "subscriptionOff"}]
            assert webhook_receiver.requests == []
            crmdeals_server.set_webhooks(webhook_receiver.url)
            [test_post] = webhook_receiver.requests
            assert test_post.json() == {"test": True}
            assert "authorization" not in test_post.headers
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=2)


def test_sandbox_server_passes_its_webhook_timings_to_the_server() -> None:
    """A trigger's ``wait`` returns while a retry is to come; ``wait_for_deliveries`` waits
    for it. The attempt timed out after ``webhook_timeout_seconds``, and its retry is due
    ``webhook_retry_seconds`` later (±10%)."""
    with (
        SandboxServer(webhook_retry_seconds=2, webhook_timeout_seconds=0.5) as server,
        WebhookReceiver() as receiver,
    ):
        server.set_webhooks(receiver.url)
        receiver.answer("statuses", delay=1.5, times=1)
        event = server.send_status("read")
        [ref] = event["deliveries"]
        waiting = server.delivery(ref["id"])
        assert (waiting["state"], waiting["attempts"]) == ("pending", 1)
        assert waiting["lastError"] == "timed out after 0.5 s"
        retry_in = at(waiting["nextAttemptAt"]) - at(waiting["lastAttemptAt"])
        assert 1.8 <= retry_in.total_seconds() <= 2.2
        [delivered] = server.wait_for_deliveries(event, timeout=10)
        assert (delivered["state"], delivered["attempts"], delivered["lastError"]) == (
            "delivered",
            2,
            None,
        )
        assert [request.kind for request in receiver.wait_for(2, kind="statuses")] == [
            "statuses",
            "statuses",
        ]


def at(platform_time: str) -> datetime:
    return datetime.fromisoformat(platform_time)
