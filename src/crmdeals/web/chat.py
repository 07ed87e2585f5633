"""``GET /chat?token=...``: the chat window that ``POST /v3/iframe`` opened, as the CRM
shows it in a frame beside its card (from 320 px wide): the chats in scope, and for the
selected one a Deals dropdown (``<details>``, no script needed) with the deals that list a
contact of the chat and that the window's user is responsible for, open ones first, then
"+" to create one. ``POST /chat/deal-button`` is that "+": the deal button's webhooks to
the CRM (``Events.deal_button``), then back to the page with what happened.

With ``options.useDealsEvents`` the CRM creates and opens deals itself: "+" and a click on
a deal post ``WZ_CREATE_ENTITY`` and ``WZ_OPEN_ENTITY`` to the parent window instead
(``static/chat.js``, the one script of these pages: its data is a JSON block of the page,
and the page's policy allows scripts from this server only, none inline). Its
``targetOrigin`` is the parent's origin where the browser says it
(``location.ancestorOrigins``, Chromium and Safari), else ``"*"``: the page is only ever
framed by the origins ``CRMDEALS_PANEL_FRAME_ANCESTORS`` allows (its frame-ancestors), so
``"*"`` reaches one of those. ``document.referrer`` would not do: after the first link
followed within the frame (another chat) it is this page's own address.

Where the contract is silent **(crmdeals)**: a chat of many contacts shows the deals of its
first ``MAX_CHAT_CONTACTS`` (in id order), up to ``SHOWN_PER_GROUP`` open and closed ones,
each in id order; a ``chat`` index that is not one of the window's chats selects the chat
selected on opening; "+" counts against the account's rate limit (it sends webhooks).
"""

from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from crmdeals import chat_window
from crmdeals.api.body import read_body
from crmdeals.api.deps import (
    EventsDep,
    RateLimiterDep,
    SettingsDep,
    SignerDep,
    StoreDep,
    count_request,
)
from crmdeals.chat_window import Chat, ChatWindow, Notice
from crmdeals.deals.schemas import Deal
from crmdeals.errors import ApiError
from crmdeals.signing import Signer
from crmdeals.storage import Store
from crmdeals.web.pages import PageRoute, content_security_policy, render

SHOWN_PER_GROUP = 100
"""The most open (and closed) deals the dropdown lists."""
MAX_CHAT_CONTACTS = 20
"""The most contacts of one chat whose deals are listed (two queries each)."""
SCRIPT_PATH = "/static/chat.js"
_SCRIPT = (Path(__file__).parent / "static" / "chat.js").read_bytes()
_MAX_FORM_BYTES = 4096
SENT = "Sent to the CRM"
CANNOT_CREATE = (
    "Set a webhook address and switch on contactsAndDealsCreation to create deals from here"
)

router = APIRouter(route_class=PageRoute)


@dataclass(frozen=True)
class OpenWindow:
    """A window a token opens: its row's id, its account and what it shows."""

    id: str
    account_id: int
    window: ChatWindow


@router.get("/chat")
async def chat_page(
    request: Request, settings: SettingsDep, signer: SignerDep, store: StoreDep
) -> Response:
    frame_ancestors = settings.panel_frame_ancestors
    token = request.query_params.get("token", "")
    signing = await signer.get()
    opened = await _open(signing, store, token)
    if opened is None:
        return _broken_link(frame_ancestors)
    window = opened.window
    chats = await _chats(store, opened)
    selected = _selected(request.query_params.get("chat", ""), chats, window)
    chat = chats[selected] if chats else None
    open_deals, closed_deals = ([], []) if chat is None else await _deals(store, opened, chat)
    notice = chat_window.read_notice(
        signing, request.query_params.get("notice", ""), window_id=opened.id
    )
    return render(
        "chat.html",
        policy=content_security_policy(frame_ancestors, scripts=True),
        user=window.userName,
        chats=chats,
        links=[_link(token, index) for index in range(len(chats))],
        selected=selected,
        chat=chat,
        open=open_deals,
        closed=closed_deals,
        token=token,
        notice=notice,
        use_events=window.useDealsEvents,
        can_create=window.useDealsEvents or await _creates_deals(store, opened.account_id),
        cannot_create=CANNOT_CREATE,
        events=None
        if chat is None or not window.useDealsEvents
        else _events_data(opened, chat, open_deals + closed_deals),
        script=SCRIPT_PATH,
    )


@router.post("/chat/deal-button")
async def deal_button(
    request: Request,
    *,
    settings: SettingsDep,
    signer: SignerDep,
    store: StoreDep,
    events: EventsDep,
    limiter: RateLimiterDep,
) -> Response:
    """The "+" of the Deals dropdown. Its form carries the window's token, which is what
    allows it (there is no cookie, so no other site can send it without the token)."""
    form = await _form(request)
    token = form.get("token", "")
    signing = await signer.get()
    opened = await _open(signing, store, token)
    if opened is None:
        return _broken_link(settings.panel_frame_ancestors)
    await count_request(request, limiter, opened.account_id)
    window = opened.window
    chats = await _chats(store, opened)
    index = _index(form.get("chat", ""), len(chats))
    if index is None:
        text, failed, index = "This chat is no longer in the window.", True, 0
    else:
        chat = chats[index]
        try:
            answer = await events.deal_button(
                account_id=opened.account_id,
                user_id=window.userId,
                chat_type=chat.chatType,
                chat_id=chat.chatId,
                name=chat.name,
                channel_id=window.channel_of(chat),
            )
        except ApiError as error:
            if error.status >= 500:  # not a refusal: the page says the server is in the way
                raise
            text, failed = error.description, True
        else:
            text, failed = (SENT, False) if answer.deliveries else (CANNOT_CREATE, True)
    notice = chat_window.sign_notice(signing, Notice(window=opened.id, text=text, failed=failed))
    # The configured public address when there is one, as the window's URL itself.
    base_url = (settings.public_url or str(request.base_url)).rstrip("/")
    location = f"{base_url}{_link(token, index)}&{urlencode({'notice': notice})}"
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


@router.get(SCRIPT_PATH)
async def script() -> Response:
    return Response(
        _SCRIPT,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


async def _open(signer: Signer, store: Store, token: str) -> OpenWindow | None:
    """The window ``token`` opens, unless the token is not ours, was changed or has expired,
    or its window is gone."""
    grant = chat_window.read_grant(signer, token)
    if grant is None:
        return None
    stored = await store.chat_window(window_id=grant.window)
    if stored is None:
        return None
    return OpenWindow(grant.window, stored.account_id, chat_window.decode_window(stored.request))


def _broken_link(frame_ancestors: str) -> Response:
    """Expired, changed or not ours: the same page, saying nothing more."""
    return render(
        "error.html",
        status=403,
        frame_ancestors=frame_ancestors,
        title="This link does not work",
        message="It may have expired. Open the chat window again from the CRM.",
    )


async def _chats(store: Store, opened: OpenWindow) -> list[Chat]:
    window = opened.window
    contacts = []
    if window.scope == "global":
        contacts = await store.contacts_with_chats_of_user(
            account_id=opened.account_id, user_id=window.userId, limit=chat_window.MAX_CHATS
        )
    return window.shown_chats(contacts)


def _index(text: str, count: int) -> int | None:
    """The chat index ``text`` names, if it is one of ``count`` chats."""
    if text.isascii() and text.isdigit() and int(text) < count:
        return int(text)
    return None


def _selected(text: str, chats: list[Chat], window: ChatWindow) -> int:
    index = _index(text, len(chats))
    return window.first_chat(chats) if index is None else index


def _link(token: str, index: int) -> str:
    return "/chat?" + urlencode({"token": token, "chat": index})


async def _deals(store: Store, opened: OpenWindow, chat: Chat) -> tuple[list[Deal], list[Deal]]:
    """The open and the closed deals that list a contact of ``chat`` and that the window's
    user is responsible for, each once, in id order."""
    contact_ids = await store.contact_ids_of_chat(
        account_id=opened.account_id, chat_type=chat.chatType, chat_id=chat.chatId
    )
    groups: list[list[Deal]] = []
    for closed in (False, True):
        found: dict[str, Deal] = {}
        for contact_id in contact_ids[:MAX_CHAT_CONTACTS]:
            page = await store.find_deals(
                account_id=opened.account_id,
                offset=0,
                limit=SHOWN_PER_GROUP,
                contact_id=contact_id,
                responsible_user_id=opened.window.userId,
                closed=closed,
            )
            for deal in page.data:
                found.setdefault(deal.id, deal)
        groups.append(sorted(found.values(), key=attrgetter("id"))[:SHOWN_PER_GROUP])
    return groups[0], groups[1]


async def _creates_deals(store: Store, account_id: int) -> bool:
    """Whether "+" can send the deal button's webhooks: the account has an address and its
    ``contactsAndDealsCreation`` switch is on."""
    webhooks = await store.webhook_settings(account_id=account_id)
    return webhooks.uri is not None and webhooks.subscriptions.contactsAndDealsCreation


def _events_data(opened: OpenWindow, chat: Chat, deals: list[Deal]) -> dict[str, Any]:
    """What ``chat.js`` posts: the chat's part of every message, and each deal's
    ``entity``."""
    window = opened.window
    return {
        "chat": {
            "chatType": chat.chatType,
            "chatId": chat.chatId,
            "channelId": window.channel_of(chat),
            "userId": window.userId,
            "integrationId": str(opened.account_id),
        },
        "deals": [
            {
                "id": deal.id,
                "name": deal.name,
                "link": deal.uri,
                "closed": deal.closed,
                "responsibleUserName": window.userName,
            }
            for deal in deals
        ],
    }


async def _form(request: Request) -> dict[str, str]:
    """The fields of a small ``application/x-www-form-urlencoded`` body (the first value of
    each)."""
    body = await read_body(request, _MAX_FORM_BYTES)
    fields = parse_qs(body.decode("ascii", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}
