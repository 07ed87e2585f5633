"""``PATCH`` and ``GET /v3/webhooks`` and ``GET /v3/channels`` (CRM sections 5 and 9): where
and what the platform sends the CRM, and the channels its chats go through.

A ``PATCH`` changes nothing until its address has passed the test POST: ``{"test":true}``
sent there, as every delivery is (the crm key as ``Bearer``, the destination policy, the
timeout), must get 200. The test POST is logged in the delivery log, and never retried: the
client sees at once why its address was refused, and may send the ``PATCH`` again."""

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import msgspec
from fastapi import APIRouter, Request, Response

from crmdeals.api import openapi
from crmdeals.api.body import read_body
from crmdeals.api.deps import AccountDep, SenderDep, SettingsDep, StoreDep
from crmdeals.api.resource import json_response
from crmdeals.errors import TestPostNotPassed, UriNotValid
from crmdeals.storage.deliveries import Outcome
from crmdeals.webhooks.schemas import NewDelivery
from crmdeals.webhooks.sender import Attempt
from crmdeals.webhooks.validation import parse_settings_change

router = APIRouter(prefix="/v3", tags=["webhooks"])

TEST_BODY = b'{"test":true}'
"""The test POST's body, exactly."""
_SAVED = {"ok": True}
_SAVED_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean", "enum": [True]}},
    "required": ["ok"],
}


def _patch_responses() -> dict[int | str, dict[str, Any]]:
    documented = openapi.responses(
        'Tested and saved: `{"ok": true}`.', 400, 413, schema=_SAVED_SCHEMA
    )
    documented[400]["description"] = (
        "Nothing was changed. The body is invalid (`INVALID_JSON`; `INVALID_REQUEST`: it or "
        "`subscriptions` is not an object, or a switch is not a JSON boolean); `uriNotValid`: "
        "`webhooksUri` is missing, `null` or not an absolute http(s) URL of at most 200 "
        'characters, or (`data: {"reason": "destinationNotAllowed"}`) its destination is '
        "not allowed; `testPostNotPassed`: the test POST did not get 200 "
        '(`data: {"status": N or null, "reason": "..."}`).'
    )
    return documented


@router.patch(
    "/webhooks",
    summary="Set the address webhooks go to and which ones are sent",
    description="Steps, in order; on an error nothing changes: the body's shape, the "
    "address's form, its destination (outside sandbox mode, and unless "
    "`CRMDEALS_WEBHOOKS_ALLOW_PRIVATE=1`, only public addresses: no loopback, private or "
    'link-local ones), then the test POST `{"test":true}` to it (with the crm key as '
    "`Bearer`, within `CRMDEALS_WEBHOOKS_TIMEOUT_SECONDS`), which must get 200. Then the "
    "address and the switches given are saved; switches left out keep their values.",
    response_class=Response,
    openapi_extra=openapi.json_body(
        openapi.WEBHOOK_SETTINGS_INPUT,
        "`webhooksUri` (required every time) and any of the four switches.",
    ),
    responses=_patch_responses(),
)
async def save_webhook_settings(
    request: Request,
    account_id: AccountDep,
    settings: SettingsDep,
    store: StoreDep,
    sender: SenderDep,
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    change = parse_settings_change(body)
    crm_key = await store.crm_key(account_id=account_id)
    attempt = await sender.post(change.uri, TEST_BODY, crm_key=crm_key)
    failure = _test_post_failure(attempt)
    await store.record_finished_delivery(
        account_id=account_id,
        event=str(uuid4()),
        delivery=NewDelivery(kind="test", body=TEST_BODY),
        outcome=Outcome(
            delivered=failure is None, status=attempt.status, error=failure, at=datetime.now(UTC)
        ),
        log_size=settings.webhooks_log_size,
    )
    if attempt.refused:
        raise UriNotValid(
            "The destination of webhooksUri is not allowed; nothing was saved.",
            {"reason": "destinationNotAllowed"},
        )
    if failure is not None:
        raise TestPostNotPassed(attempt.status, failure)
    await store.save_webhook_settings(
        account_id=account_id, uri=change.uri, switches=change.switches
    )
    return json_response(_SAVED)


def _test_post_failure(attempt: Attempt) -> str | None:
    """Why the test POST did not pass, in the delivery log's words; ``None`` when it got
    200 (another 2xx is not enough)."""
    if attempt.error is not None:
        return attempt.error
    if attempt.status != 200:
        return f"answered {attempt.status}, not 200"
    return None


@router.get(
    "/webhooks",
    summary="The address webhooks go to and which ones are sent",
    description="Never set: `webhooksUri` is `null` and every switch is off. "
    "`wabaTemplatesStatus` is `templateStatus` again, under the platform's other name.",
    response_class=Response,
    responses=openapi.responses("The settings.", schema=openapi.WEBHOOK_SETTINGS),
)
async def get_webhook_settings(account_id: AccountDep, store: StoreDep) -> Response:
    stored = await store.webhook_settings(account_id=account_id)
    switches = msgspec.structs.asdict(stored.subscriptions)
    switches["wabaTemplatesStatus"] = stored.subscriptions.templateStatus
    return json_response({"webhooksUri": stored.uri, "subscriptions": switches})


@router.get(
    "/channels",
    summary="The account's channels, in the order they were put",
    description="The messenger connections the account's chats go through (`[]` for a new "
    "account). `plainId` and `name` are `null` when not set.",
    response_class=Response,
    responses=openapi.responses("The channels.", schema=openapi.CHANNEL_LIST),
)
async def list_channels(account_id: AccountDep, store: StoreDep) -> Response:
    return json_response(await store.list_channels(account_id=account_id))
