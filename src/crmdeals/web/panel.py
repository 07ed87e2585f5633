"""``GET /panel?token=...``: the deals of one contact that one user is responsible for, open
ones first, as the chat window shows them beside a conversation (from 320 px wide).

The link names the contact and the user by id; the page shows their names (one query),
or the ids themselves while the CRM has not sent them."""

from fastapi import APIRouter, Request, Response

from crmdeals import panel
from crmdeals.api.deps import SettingsDep, SignerDep, StoreDep
from crmdeals.web.pages import PageRoute, render

SHOWN_PER_GROUP = 100
"""The most open (and closed) deals the panel lists; it says how many more there are."""

router = APIRouter(route_class=PageRoute)


@router.get("/panel")
async def panel_page(
    request: Request, settings: SettingsDep, signer: SignerDep, store: StoreDep
) -> Response:
    frame_ancestors = settings.panel_frame_ancestors
    grant = panel.read_grant(await signer.get(), request.query_params.get("token", ""))
    if grant is None:  # expired, changed or not ours: the same page, saying nothing more
        return render(
            "error.html",
            status=403,
            frame_ancestors=frame_ancestors,
            title="This link does not work",
            message="It may have expired. Open the deals panel again from the chat.",
        )
    groups = [
        await store.find_deals(
            account_id=grant.account,
            offset=0,
            limit=SHOWN_PER_GROUP,
            contact_id=grant.contact,
            responsible_user_id=grant.user,
            closed=closed,
        )
        for closed in (False, True)
    ]
    names = await store.names(
        account_id=grant.account, user_ids=[grant.user], contact_ids=[grant.contact]
    )
    return render(
        "panel.html",
        frame_ancestors=frame_ancestors,
        open=groups[0],
        closed=groups[1],
        contact=names.contacts.get(grant.contact, grant.contact),
        user=names.users.get(grant.user, grant.user),
    )
