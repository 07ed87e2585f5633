"""The chat window: ``POST /v3/iframe`` opens one for a user, ``/chat?token=...`` shows it.

A CRM asks for a window with its API key and shows the URL in a frame: the chats in scope
(``card``: the ones it lists; ``global``: those of the user's contacts) and, for the
selected chat, the user's deals with its contacts. The request is stored (``chat_windows``)
and the URL's token, signed by the server (``crmdeals.signing``), names the stored window
and its expiry: the page never sees an API key, and a token cannot be changed to show
another window. The deal button's answer is shown after a redirect, as a notice signed the
same way (for its window), so that no link can make the page say something it did not.

A request is read as the contract says, where it is silent **(crmdeals)**: ``filter`` is
not read at all for ``global`` (an invalid one is ignored too, not refused); a chat listed
twice in ``filter`` is shown once, with its first ``name``; ``channelId`` and ``clientType``
are strings of 1-100 characters.
"""

import time
from typing import Annotated, Literal
from urllib.parse import urlencode

import msgspec
from msgspec import Meta

from crmdeals.batch import field_problems
from crmdeals.contacts.schemas import ChatType, Contact
from crmdeals.errors import InvalidRequest
from crmdeals.fields import IdInput, Name, id_text
from crmdeals.signing import Signer
from crmdeals.users.schemas import UserIdInput

PURPOSE = "chat-window"
NOTICE_PURPOSE = "chat-window-notice"
MAX_CHATS = 100
"""The most chats one window lists: a ``card`` filter's limit, and the cap of ``global``."""
INVALID = "The chat window request is invalid."

Text = Annotated[str, Meta(min_length=1, max_length=100)]


class WindowUserInput(msgspec.Struct):
    id: UserIdInput
    name: Name | None = None


class FilterChatInput(msgspec.Struct):
    chatType: ChatType
    chatId: IdInput
    name: Name | None = None


class ActiveChatInput(msgspec.Struct):
    chatType: ChatType
    chatId: IdInput
    channelId: Text | None = None


class OptionsInput(msgspec.Struct):
    useDealsEvents: bool = False
    useMessageEvents: bool = False
    clientType: Text | None = None


ChatFilter = Annotated[list[FilterChatInput], Meta(min_length=1, max_length=MAX_CHATS)]


class ChatWindowRequest(msgspec.Struct):
    """The body of ``POST /v3/iframe``: whose window (``user``), which chats (``scope``,
    ``filter``), which one first (``activeChat``), and who creates deals (``options``).
    Fields not listed here are ignored."""

    user: WindowUserInput
    scope: Literal["global", "card"]
    filter: ChatFilter | None = None
    activeChat: ActiveChatInput | None = None
    options: OptionsInput | None = None


class ChatWindowUrl(msgspec.Struct):
    """The answer: the window's URL, to show in a frame (it needs no API key)."""

    url: str


class Chat(msgspec.Struct, frozen=True):
    """A chat the window lists: ``name`` is what it is shown as (``None``: its ``chatId``)."""

    chatType: str
    chatId: str
    name: str | None = None


class ActiveChat(msgspec.Struct, frozen=True):
    chatType: str
    chatId: str
    channelId: str | None


class ChatWindow(msgspec.Struct, forbid_unknown_fields=True):
    """A window as stored: the request normalised (ids as strings, the user's name filled
    in from the user when not sent, options with their defaults; ``chats`` is ``filter``,
    each chat once, and empty for ``global``)."""

    userId: str
    userName: str
    scope: Literal["global", "card"]
    chats: list[Chat]
    activeChat: ActiveChat | None
    useDealsEvents: bool
    useMessageEvents: bool
    clientType: str | None

    def shown_chats(self, contacts: list[Contact]) -> list[Chat]:
        """The chats in scope: the filter's (``card``), or else (``global``) those of
        ``contacts`` (the user's, in id order) that have a ``chatId``, each once, named by
        its first contact, at most ``MAX_CHATS``."""
        if self.scope == "card":
            return self.chats
        chats: dict[tuple[str, str], Chat] = {}
        for contact in contacts:
            for data in contact.contactData:
                if data.chatId is not None:
                    key = (data.chatType, data.chatId)
                    chats.setdefault(key, Chat(data.chatType, data.chatId, contact.name))
        return list(chats.values())[:MAX_CHATS]

    def first_chat(self, chats: list[Chat]) -> int:
        """The index of the chat selected on opening: ``activeChat`` if it is shown, else
        the first."""
        active = self.activeChat
        for index, chat in enumerate(chats):
            if active and (chat.chatType, chat.chatId) == (active.chatType, active.chatId):
                return index
        return 0

    def channel_of(self, chat: Chat) -> str | None:
        """``activeChat.channelId`` when ``chat`` is the active chat; else ``None``."""
        active = self.activeChat
        if active and (chat.chatType, chat.chatId) == (active.chatType, active.chatId):
            return active.channelId
        return None


class ChatWindowGrant(msgspec.Struct, forbid_unknown_fields=True):
    """What a window's token allows: showing the stored window ``window`` until
    ``expires`` (Unix seconds)."""

    window: str
    expires: int


class Notice(msgspec.Struct, forbid_unknown_fields=True):
    """What the deal button answered, to show once on ``window``'s page: ``failed`` when
    ``text`` is a refusal's description."""

    window: str
    text: str
    failed: bool


_scope_decoder = msgspec.json.Decoder(str)
_encode = msgspec.json.Encoder().encode
_decode_window = msgspec.json.Decoder(ChatWindow).decode
_NEEDS_FILTER = "Required when `scope` is `card`"


def read_request(fields: dict[str, msgspec.Raw]) -> ChatWindowRequest:
    """A body's fields (a JSON object, its values undecoded) as a ``ChatWindowRequest``;
    ``InvalidRequest`` naming every missing or invalid field (``filter`` is required for
    ``card``, not read for ``global``)."""
    scope = _scope(fields)
    if scope == "global":
        fields = {name: value for name, value in fields.items() if name != "filter"}
    problems = field_problems(fields, msgspec.structs.fields(ChatWindowRequest))
    if scope == "card" and msgspec.json.decode(fields.get("filter", b"null")) is None:
        problems["filter"] = _NEEDS_FILTER
    if problems:
        raise InvalidRequest(INVALID, problems)
    return msgspec.json.decode(_encode(fields), type=ChatWindowRequest)


def _scope(fields: dict[str, msgspec.Raw]) -> str | None:
    """``scope`` as sent, if it is a string."""
    try:
        return _scope_decoder.decode(fields.get("scope", b"null"))
    except msgspec.ValidationError:
        return None


def window_of(request: ChatWindowRequest, *, stored_user_name: str) -> ChatWindow:
    """The window ``request`` opens, normalised; ``stored_user_name``: the user's name, for
    a request that does not send one."""
    chats: dict[tuple[str, str], Chat] = {}
    for chat in request.filter or []:  # never read for global
        chat_id = id_text(chat.chatId)
        chats.setdefault((chat.chatType, chat_id), Chat(chat.chatType, chat_id, chat.name))
    active = request.activeChat
    options = request.options or OptionsInput()
    return ChatWindow(
        userId=id_text(request.user.id),
        userName=request.user.name or stored_user_name,
        scope=request.scope,
        chats=list(chats.values()),
        activeChat=None
        if active is None
        else ActiveChat(active.chatType, id_text(active.chatId), active.channelId),
        useDealsEvents=options.useDealsEvents,
        useMessageEvents=options.useMessageEvents,
        clientType=options.clientType,
    )


def encode_window(window: ChatWindow) -> str:
    """``window`` as the JSON text its row holds."""
    return _encode(window).decode()


def decode_window(text: str) -> ChatWindow:
    return _decode_window(text)


def issue_url(signer: Signer, *, base_url: str, window_id: str, expires: int) -> str:
    """The URL of the stored window ``window_id`` under ``base_url`` (``http://host:port``),
    whose token works until ``expires`` (Unix seconds)."""
    token = signer.sign(PURPOSE, ChatWindowGrant(window=window_id, expires=expires))
    return f"{base_url.rstrip('/')}/chat?{urlencode({'token': token})}"


def read_grant(signer: Signer, token: str, *, now: float | None = None) -> ChatWindowGrant | None:
    """What ``token`` allows, unless it is not ours, was changed, or has expired."""
    grant = signer.verify(PURPOSE, token, ChatWindowGrant)
    if grant is None or grant.expires <= (now if now is not None else time.time()):
        return None
    return grant


def sign_notice(signer: Signer, notice: Notice) -> str:
    return signer.sign(NOTICE_PURPOSE, notice)


def read_notice(signer: Signer, token: str, *, window_id: str) -> Notice | None:
    """The notice ``token`` carries, if this server signed it for the window ``window_id``."""
    notice = signer.verify(NOTICE_PURPOSE, token, Notice)
    return notice if notice is not None and notice.window == window_id else None
