"""``POST /v3/panel/links``: a signed link to the deals panel of one user and one contact."""

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Request, Response

from crmdeals import panel
from crmdeals.api import openapi
from crmdeals.api.auth import current_account
from crmdeals.api.body import read_body
from crmdeals.signing import ServerSigner

router = APIRouter(prefix="/v3/panel", tags=["panel"])


@router.post(
    "/links",
    summary="Make a link to the deals panel of a user and a contact",
    response_class=Response,
    openapi_extra=openapi.json_body(
        openapi.PANEL_LINK_REQUEST,
        "Whose panel (`userId`: the deals they are responsible for), about which contact "
        f"(`contactId`), and how long the link works (`ttlSeconds`, {panel.MIN_TTL_SECONDS}"
        f" to {panel.MAX_TTL_SECONDS}, default {panel.DEFAULT_TTL_SECONDS}).",
    ),
    responses=openapi.responses(
        "The panel's URL (to show in a frame; it needs no API key) and when it expires.",
        400,
        413,
        schema=openapi.PANEL_LINK,
    ),
)
async def create_panel_link(
    request: Request, account_id: Annotated[int, Depends(current_account)]
) -> Response:
    body = await read_body(request, request.app.state.settings.max_body_bytes)
    user_id, contact_id, ttl_seconds = panel.parse_link_request(body)
    server_signer: ServerSigner = request.app.state.signer
    # The configured public address when there is one: the Host header is whatever the
    # client (or a proxy in between) sent, which may not be where browsers reach the panel.
    public_url: str | None = request.app.state.settings.public_url
    link = panel.issue_link(
        await server_signer.get(),
        base_url=public_url or str(request.base_url),
        account_id=account_id,
        user_id=user_id,
        contact_id=contact_id,
        ttl_seconds=ttl_seconds,
    )
    return Response(msgspec.json.encode(link), media_type="application/json")
