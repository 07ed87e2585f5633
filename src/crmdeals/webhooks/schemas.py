"""The shapes of webhooks: an account's webhook settings, its channels, the deliveries'
log, and the bodies the platform POSTs to the CRM (CRM sections 5, 6 and 9)."""

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from crmdeals.contacts.schemas import ChatType
from crmdeals.fields import IdInput, Name, Uri
from crmdeals.limits import MAX_ID_LENGTH, MAX_NAME_LENGTH

MAX_TEXT_LENGTH = 4096
"""The longest text of a simulated message (a messenger's own limit is about this)."""
ChannelIdText = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
"""A channel's id as a trigger names it (the channels' own are UUIDs; any other finds none)."""

Transport = Literal[
    "whatsapp", "wapi", "instagram", "tgapi", "telegram", "vk", "avito", "max", "maxbot", "viber"
]
"""The messengers a channel can be."""

ChannelState = Literal[
    "active",
    "init",
    "disabled",
    "phoneUnavailable",
    "qr",
    "qridle",
    "openElsewhere",
    "notEnoughMoney",
    "foreignphone",
    "unauthorized",
    "waitForPassword",
    "onModeration",
    "rejected",
    "blocked",
]
"""Every state a channel can be in: all the platform's page versions' values."""

DeliveryKind = Literal[
    "test", "messages", "statuses", "createContact", "createDeal", "channelsUpdates"
]
"""What a delivery carries: the test POST, or its body's one key."""

DeliveryState = Literal["pending", "delivered", "failed"]


class Subscriptions(msgspec.Struct):
    """The four switches of ``PATCH /v3/webhooks``."""

    messagesAndStatuses: bool = False
    contactsAndDealsCreation: bool = False
    channelsUpdates: bool = False
    templateStatus: bool = False


class WebhookSettings(msgspec.Struct):
    """An account's webhook settings as stored (never set: no address, every switch off).
    The crm key is not among them: it never leaves the database but in the
    ``Authorization`` header of a delivery."""

    uri: str | None
    subscriptions: Subscriptions


class Channel(msgspec.Struct):
    """A channel of an account, as ``GET /v3/channels`` lists it."""

    channelId: str
    transport: Transport
    plainId: str | None
    state: ChannelState
    name: str | None


class ChannelUpdate(msgspec.Struct):
    """One item of a ``channelsUpdates`` body: a channel's new state, and when (ms since
    the epoch)."""

    channelId: str
    state: ChannelState
    timestamp: int


class Delivery(msgspec.Struct):
    """One delivery, as the delivery log shows it."""

    id: int
    event: str
    kind: DeliveryKind
    state: DeliveryState
    attempts: int
    lastStatus: int | None
    lastError: str | None
    createdAt: str
    lastAttemptAt: str | None
    nextAttemptAt: str | None
    body: msgspec.Raw
    """The JSON body sent (or to be sent), as it is sent."""


class DeliveriesPage(msgspec.Struct):
    """One page of ``GET /crmdeals/deliveries``: ``count`` is how many the log holds."""

    count: int
    data: list[Delivery]


class DeliveryRef(msgspec.Struct):
    """A delivery an event made, as the sandbox's triggers answer it."""

    id: int
    kind: DeliveryKind


class NewDelivery(msgspec.Struct):
    """A delivery to store: its kind and its JSON body."""

    kind: DeliveryKind
    body: bytes


class Skipped(msgspec.Struct):
    """A delivery an event did not make, and why (``subscriptionOff``, ``noWebhooksUri``,
    ``noPipelineStages``, ``noUsers``, ``dealExists``)."""

    kind: DeliveryKind
    reason: str


class EventAnswer(msgspec.Struct):
    """What a trigger answers: the event's id, its message's id (``None`` without a
    message), the deliveries it made in their order, and those it did not make."""

    event: str
    messageId: str | None
    deliveries: list[DeliveryRef]
    skipped: list[Skipped]


class MessageTrigger(msgspec.Struct):
    """``POST /sandbox/messages``: a new client writes in a chat."""

    chatType: ChatType
    chatId: IdInput
    text: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_LENGTH)] | None = None
    contentUri: Uri | None = None
    name: Name | None = None
    channelId: ChannelIdText | None = None
    userId: IdInput | None = None
    wait: bool = False


class StatusError(msgspec.Struct):
    """Why an outgoing message failed, as ``statuses[].error`` carries it."""

    error: Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
    description: Annotated[str, Meta(max_length=MAX_TEXT_LENGTH)] = ""


MessageStatus = Literal["sent", "delivered", "read", "error", "edited"]


class StatusTrigger(msgspec.Struct):
    """``POST /sandbox/statuses``: an outgoing message changes status."""

    status: MessageStatus
    messageId: Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)] | None = None
    error: StatusError | None = None
    wait: bool = False


class DealButtonTrigger(msgspec.Struct):
    """``POST /sandbox/deal-button``: a rep clicks the "+" of the Deals dropdown."""

    userId: IdInput
    chatType: ChatType
    chatId: IdInput
    name: Name | None = None
    channelId: ChannelIdText | None = None
    wait: bool = False


def platform_time(moment: datetime) -> str:
    """``moment`` in ISO 8601, UTC, with milliseconds and ``Z``, as the platform writes
    times (a naive ``moment`` is taken as UTC: SQLite gives back what was stored so)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
