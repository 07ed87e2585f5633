"""The sandbox's webhook set-up (``CRMDEALS_SANDBOX=1`` only): what an operator does with
``crmdeals accounts crm-key`` and ``crmdeals channels set``, an integrator does here for the
calling account: set the crm key its deliveries carry, and put its channels."""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from crmdeals.api import openapi
from crmdeals.api.body import read_body
from crmdeals.api.deps import AccountDep, SettingsDep, StoreDep
from crmdeals.api.resource import json_response
from crmdeals.limits import MAX_ENTITIES
from crmdeals.webhooks.validation import CRM_KEY_RULE, parse_channels, parse_crm_key

router = APIRouter(prefix="/sandbox", tags=["sandbox"])


def _crm_key_responses() -> dict[int | str, dict[str, Any]]:
    documented = openapi.responses("", 400, 413)
    del documented[200]
    return {204: {"description": "Set (or cleared); empty body."}, **documented}


@router.put(
    "/crm-key",
    summary="Set or clear the crm key the account's webhooks carry",
    description="Deliveries (and the test POST) carry `Authorization: Bearer <crmKey>` while "
    f"the account has one. A key is {CRM_KEY_RULE}. It is never shown again: no answer or "
    "log line holds it, not even an error about it.",
    status_code=204,
    response_class=Response,
    responses=_crm_key_responses(),
    openapi_extra=openapi.json_body(openapi.CRM_KEY_INPUT, "The key, or `null` to clear it."),
)
async def set_crm_key(
    request: Request, account_id: AccountDep, settings: SettingsDep, store: StoreDep
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    crm_key = parse_crm_key(body)
    await store.set_crm_key(account_id=account_id, crm_key=crm_key)
    return Response(status_code=204)


@router.put(
    "/channels",
    summary=f"Replace the account's channels with up to {MAX_ENTITIES}",
    description="The account's whole set afterwards, in this order (`[]` removes them all). "
    "A channel without `channelId` gets a new uuid4; a `channelId` is any uuid, stored in "
    "lowercase canonical form, and at most once in a body. `state` is `active` unless "
    "given. A channel kept under its id with a new `state` sends `channelsUpdates` when "
    "the account's `channelsUpdates` switch is on; new and removed channels send nothing.",
    response_class=Response,
    responses=openapi.responses(
        "The channels stored, as `GET /v3/channels` lists them.",
        400,
        413,
        schema=openapi.CHANNEL_LIST,
    ),
    openapi_extra=openapi.json_body(openapi.CHANNEL_BATCH, "The account's whole set."),
)
async def put_channels(
    request: Request, account_id: AccountDep, settings: SettingsDep, store: StoreDep
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    channels = parse_channels(body)
    stored = await store.replace_channels(
        account_id=account_id,
        channels=channels,
        now=datetime.now(UTC),
        log_size=settings.webhooks_log_size,
    )
    return json_response(stored)
