"""What triggers deliveries (CRM section 7): a new client writing in a chat, an outgoing
message changing status, the "+" of the chat window's Deals dropdown. Each event decides
which deliveries to make from the account's settings and data, stores them in the outbox in
its order (``messages``, ``createContact``, ``createDeal``) and wakes this process's
delivery loop; it sends nothing itself.

The sandbox's routes (``/sandbox/messages``, ``/sandbox/statuses``, ``/sandbox/deal-button``)
and the chat window's "+" call these; channel changes make their own delivery where the
channels are stored (``Store.replace_channels``)."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import anyio
import msgspec

from crmdeals.errors import ChannelNotFound, InvalidUser
from crmdeals.settings import Settings
from crmdeals.storage import Store
from crmdeals.webhooks.schemas import (
    Channel,
    DeliveryKind,
    DeliveryRef,
    EventAnswer,
    NewDelivery,
    Skipped,
    StatusError,
    WebhookSettings,
    platform_time,
)

CHAT_TRANSPORTS = {
    "whatsapp": ("whatsapp", "wapi"),
    "whatsgroup": ("whatsapp", "wapi"),
    "telegram": ("telegram", "tgapi"),
    "telegroup": ("telegram", "tgapi"),
    "max": ("max", "maxbot"),
    "maxgroup": ("max", "maxbot"),
    "viber": ("viber",),
    "instagram": ("instagram",),
    "vk": ("vk",),
    "avito": ("avito",),
}
"""The transports of the channels that serve each chat type: a channel serves its
messenger's chats, groups included (``wapi`` is WhatsApp, ``tgapi`` Telegram, ``maxbot``
MAX)."""

_CONTENT_TYPES = {
    "image": {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".heic"},
    "audio": {".mp3", ".ogg", ".oga", ".opus", ".wav", ".m4a", ".aac"},
    "video": {".mp4", ".mov", ".webm", ".avi", ".mkv", ".3gp"},
}
"""A message's ``type`` from its ``contentUri``'s file extension; any other: ``document``."""

WAIT_POLL_SECONDS = 0.05


class Events:
    """The events of one server process; ``wake`` nudges its delivery loop."""

    def __init__(self, store: Store, settings: Settings, wake: Callable[[], None]) -> None:
        self._store = store
        self._settings = settings
        self._wake = wake

    async def message(
        self,
        *,
        account_id: int,
        chat_type: str,
        chat_id: str,
        text: str | None = None,
        content_uri: str | None = None,
        name: str | None = None,
        channel_id: str | None = None,
        user_id: str | None = None,
    ) -> EventAnswer:
        """A new client writes: ``messages`` when ``messagesAndStatuses`` is on; then, when
        ``contactsAndDealsCreation`` is on and a pipeline has stages, ``createContact``
        (when no contact holds the chat) and ``createDeal`` (unless a deal lists one of the
        chat's contacts)."""
        store, settings = self._store, await self._store.webhook_settings(account_id=account_id)
        channel = await self._channel(account_id, chat_type, channel_id)
        if user_id is not None:
            await self._require_user(account_id, user_id)
        plan = _Plan(settings)
        message_id = str(uuid.uuid4())
        if plan.allows("messages", settings.subscriptions.messagesAndStatuses):
            message: dict[str, object] = {
                "messageId": message_id,
                "channelId": channel.channelId,
                "chatType": chat_type,
                "chatId": chat_id,
                "dateTime": platform_time(datetime.now(UTC)),
                "type": "text" if content_uri is None else _content_type(content_uri),
                "status": "inbound",
                "isEcho": False,
            }
            if text is not None:
                message["text"] = text
            if content_uri is not None:
                message["contentUri"] = content_uri
            if name is not None:
                message["contact"] = {"name": name}
            plan.add("messages", {"messages": [message]})
        creation = settings.subscriptions.contactsAndDealsCreation
        if plan.allows_creation(creation):
            pipelines = await store.list_pipelines(account_id=account_id)
            if not any(pipeline.stages for pipeline in pipelines):
                plan.skip_creation("noPipelineStages")
            else:
                await self._plan_creation(
                    plan,
                    account_id=account_id,
                    chat_type=chat_type,
                    chat_id=chat_id,
                    name=name,
                    user_id=user_id,
                    source="auto",
                )
        return await self._store_plan(plan, account_id, message_id)

    async def status(
        self,
        *,
        account_id: int,
        status: str,
        message_id: str | None = None,
        error: StatusError | None = None,
    ) -> EventAnswer:
        """An outgoing message changes status: ``statuses`` when ``messagesAndStatuses`` is
        on."""
        settings = await self._store.webhook_settings(account_id=account_id)
        message_id = message_id or str(uuid.uuid4())
        plan = _Plan(settings)
        if plan.allows("statuses", settings.subscriptions.messagesAndStatuses):
            item: dict[str, object] = {
                "messageId": message_id,
                "timestamp": platform_time(datetime.now(UTC)),
                "status": status,
            }
            if error is not None:
                item["error"] = error
            plan.add("statuses", {"statuses": [item]})
        return await self._store_plan(plan, account_id, message_id)

    async def deal_button(
        self,
        *,
        account_id: int,
        user_id: str,
        chat_type: str,
        chat_id: str,
        name: str | None = None,
        channel_id: str | None = None,
    ) -> EventAnswer:
        """A rep clicks "+": ``createContact`` when no contact holds the chat, then always
        ``createDeal``, with the rep responsible (``byUser``). Needs an address and the
        ``contactsAndDealsCreation`` switch, not pipelines."""
        await self._require_user(account_id, user_id)
        if channel_id is not None:
            await self._channel(account_id, chat_type, channel_id)
        settings = await self._store.webhook_settings(account_id=account_id)
        plan = _Plan(settings)
        if plan.allows_creation(settings.subscriptions.contactsAndDealsCreation):
            await self._plan_creation(
                plan,
                account_id=account_id,
                chat_type=chat_type,
                chat_id=chat_id,
                name=name,
                user_id=user_id,
                source="byUser",
            )
        return await self._store_plan(plan, account_id, None)

    async def wait_settled(self, answer: EventAnswer, timeout: float) -> None:
        """Return once the event's deliveries are delivered, failed or waiting for a retry,
        or after ``timeout`` seconds."""
        if not answer.deliveries:
            return
        with anyio.move_on_after(timeout):
            while not await self._store.event_settled(event=answer.event, now=datetime.now(UTC)):
                await anyio.sleep(WAIT_POLL_SECONDS)

    async def _plan_creation(
        self,
        plan: "_Plan",
        *,
        account_id: int,
        chat_type: str,
        chat_id: str,
        name: str | None,
        user_id: str | None,
        source: str,
    ) -> None:
        store = self._store
        contact_ids = await store.contact_ids_of_chat(
            account_id=account_id, chat_type=chat_type, chat_id=chat_id
        )
        if source == "auto":
            for contact_id in contact_ids:
                listed = await store.find_deals(
                    account_id=account_id, offset=0, limit=1, contact_id=contact_id
                )
                if listed.data:
                    plan.skip_creation("dealExists")
                    return
        responsible = user_id
        if responsible is None:
            responsible = await store.take_auto_user_turn(account_id=account_id)
            if responsible is None:
                plan.skip_creation("noUsers")
                return
        if not contact_ids:
            contact = {
                "responsibleUserId": responsible,
                "name": name or chat_id,
                "contactData": [{"chatType": chat_type, "chatId": chat_id}],
                "source": source,
            }
            plan.add("createContact", {"createContact": contact})
        deal = {"responsibleUserId": responsible, "contacts": contact_ids[:1], "source": source}
        plan.add("createDeal", {"createDeal": deal})

    async def _channel(self, account_id: int, chat_type: str, channel_id: str | None) -> Channel:
        """The channel a chat's message comes through: ``channel_id``'s, which must serve
        the chat type, or the first that does."""
        transports = CHAT_TRANSPORTS[chat_type]
        for channel in await self._store.list_channels(account_id=account_id):
            if channel.transport in transports and channel_id in (None, channel.channelId):
                return channel
        if channel_id is None:
            raise ChannelNotFound(
                f"No channel of the account serves {chat_type} chats: add one "
                "(PUT /sandbox/channels).",
                {"chatType": chat_type},
            )
        raise ChannelNotFound(
            f"The account has no channel with this id that serves {chat_type} chats.",
            {"channelId": channel_id},
        )

    async def _require_user(self, account_id: int, user_id: str) -> None:
        if await self._store.get_user(account_id=account_id, user_id=user_id) is None:
            raise InvalidUser(user_id)

    async def _store_plan(
        self, plan: "_Plan", account_id: int, message_id: str | None
    ) -> EventAnswer:
        event = str(uuid.uuid4())
        refs: list[DeliveryRef] = []
        if plan.deliveries:
            refs = await self._store.add_event(
                account_id=account_id,
                event=event,
                deliveries=plan.deliveries,
                now=datetime.now(UTC),
                log_size=self._settings.webhooks_log_size,
            )
            self._wake()
        return EventAnswer(event=event, messageId=message_id, deliveries=refs, skipped=plan.skipped)


class _Plan:
    """The deliveries an event makes, in order, and those it skips."""

    def __init__(self, settings: WebhookSettings) -> None:
        self._has_uri = settings.uri is not None
        self.deliveries: list[NewDelivery] = []
        self.skipped: list[Skipped] = []

    def allows(self, kind: DeliveryKind, switch: bool) -> bool:
        """Whether the ``kind`` may be made: its switch on and an address set; else it is
        skipped, saying which is missing."""
        if not switch:
            self.skipped.append(Skipped(kind=kind, reason="subscriptionOff"))
        elif not self._has_uri:
            self.skipped.append(Skipped(kind=kind, reason="noWebhooksUri"))
        return switch and self._has_uri

    def allows_creation(self, switch: bool) -> bool:
        if switch and self._has_uri:
            return True
        self.skip_creation("subscriptionOff" if not switch else "noWebhooksUri")
        return False

    def skip_creation(self, reason: str) -> None:
        self.skipped.append(Skipped(kind="createContact", reason=reason))
        self.skipped.append(Skipped(kind="createDeal", reason=reason))

    def add(self, kind: DeliveryKind, body: dict[str, object]) -> None:
        self.deliveries.append(NewDelivery(kind=kind, body=msgspec.json.encode(body)))


def _content_type(content_uri: str) -> str:
    suffix = PurePosixPath(urlsplit(content_uri).path).suffix.lower()
    for content_type, suffixes in _CONTENT_TYPES.items():
        if suffix in suffixes:
            return content_type
    return "document"
