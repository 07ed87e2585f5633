"""``POST /v3/panel/links``: a signed link to the deals panel of one user and one contact."""

from fastapi import APIRouter, Request, Response

from crmdeals import panel
from crmdeals.api import openapi
from crmdeals.api.body import parse_json_object, read_body
from crmdeals.api.deps import AccountDep, SettingsDep, SignerDep
from crmdeals.api.resource import json_response

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
    request: Request, account_id: AccountDep, settings: SettingsDep, signer: SignerDep
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    wanted = parse_json_object(
        body, panel.PanelLinkRequest, invalid="The panel link request is invalid."
    )
    link = panel.issue_link(
        await signer.get(),
        # The configured public address when there is one: the Host header is whatever the
        # client (or a proxy in between) sent, which may not be where browsers reach the panel.
        base_url=settings.public_url or str(request.base_url),
        account_id=account_id,
        user_id=str(wanted.userId),
        contact_id=str(wanted.contactId),
        ttl_seconds=wanted.ttlSeconds,
    )
    return json_response(link)
