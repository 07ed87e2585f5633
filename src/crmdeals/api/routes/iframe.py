"""``POST /v3/iframe``: a chat window for one user, as a signed, expiring URL of ``/chat``."""

import secrets
import time
from datetime import UTC, datetime

import msgspec
from fastapi import APIRouter, Request, Response

from crmdeals import chat_window
from crmdeals.api import openapi
from crmdeals.api.body import parse_json, read_body
from crmdeals.api.deps import AccountDep, SettingsDep, SignerDep, StoreDep
from crmdeals.api.resource import json_response
from crmdeals.errors import InvalidUser
from crmdeals.fields import id_text

router = APIRouter(prefix="/v3", tags=["chat window"])

_object_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


@router.post(
    "/iframe",
    summary="Open a chat window for a user",
    response_class=Response,
    openapi_extra=openapi.json_body(
        openapi.CHAT_WINDOW_REQUEST,
        "Whose window (`user.id`, a user of the account; `user.name` defaults to the "
        "stored one), which chats (`scope`: `global`, the chats of the user's contacts, or "
        f"`card`, the 1 to {chat_window.MAX_CHATS} chats of `filter`), which one is "
        "selected first (`activeChat`) and whether the CRM creates deals itself "
        "(`options.useDealsEvents`: the page posts `WZ_CREATE_ENTITY` and "
        "`WZ_OPEN_ENTITY` messages to its parent window instead of sending webhooks).",
    ),
    responses=openapi.responses(
        "The window's URL, to show in a frame (it needs no API key; it works for "
        "`CRMDEALS_CHAT_WINDOW_TTL_SECONDS`, an hour by default).",
        400,
        413,
        schema=openapi.CHAT_WINDOW_URL,
        described={
            400: "The body is invalid (`INVALID_JSON`, `INVALID_REQUEST`), or `user.id` is "
            "not a user of the account (`INVALID_USER`); nothing was stored."
        },
    ),
)
async def open_chat_window(
    request: Request,
    account_id: AccountDep,
    settings: SettingsDep,
    signer: SignerDep,
    store: StoreDep,
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    fields = parse_json(body, _object_decoder, wrong_shape="The body must be a JSON object.")
    wanted = chat_window.read_request(fields)
    user_id = id_text(wanted.user.id)
    user = await store.get_user(account_id=account_id, user_id=user_id)
    if user is None:
        raise InvalidUser(user_id)
    window = chat_window.window_of(wanted, stored_user_name=user.name)
    window_id = secrets.token_hex(16)
    expires = int(time.time()) + settings.chat_window_ttl_seconds
    await store.open_chat_window(
        window_id=window_id,
        account_id=account_id,
        request=chat_window.encode_window(window),
        expires_at=datetime.fromtimestamp(expires, UTC),
    )
    url = chat_window.issue_url(
        await signer.get(),
        # The configured public address when there is one, as for panel links.
        base_url=settings.public_url or str(request.base_url),
        window_id=window_id,
        expires=expires,
    )
    return json_response(chat_window.ChatWindowUrl(url=url))
