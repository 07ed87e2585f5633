"""The shapes of webhooks: an account's webhook settings, its channels, the deliveries'
log, and the bodies the platform POSTs to the CRM (CRM sections 5, 6 and 9)."""

from typing import Literal

import msgspec

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
    ``has_crm_key``: whether deliveries carry ``Authorization: Bearer``; the key itself
    never leaves the database but in that header."""

    uri: str | None
    subscriptions: Subscriptions
    has_crm_key: bool


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
