"""Where the webhooks' request bodies become values: the ``PATCH /v3/webhooks`` settings
(its steps 1 and 2; the test POST is the route's), the crm key's rule and the channels'
whole set. The routes and the command line share them, so a key or a channels file is held
to the same rules whichever way it arrives.

A crm key goes out as ``Authorization: Bearer <key>``, so it is what a header value may
hold unambiguously: printable ASCII without spaces (``!`` to ``~``). No error here repeats
a key, or any part of it: msgspec's reasons name the type, never the value.
"""

import uuid
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

import msgspec
from msgspec import UNSET, Meta, UnsetType

from crmdeals.api.body import parse_json
from crmdeals.batch import body_text, field_problems, not_json
from crmdeals.errors import InvalidRequest, TooManyEntities, UriNotValid
from crmdeals.fields import Uri
from crmdeals.limits import MAX_ENTITIES, MAX_ID_LENGTH, MAX_NAME_LENGTH
from crmdeals.webhooks.schemas import Channel, ChannelState, Transport

MIN_CRM_KEY_LENGTH = 16
MAX_CRM_KEY_LENGTH = 200
CRM_KEY_PATTERN = r"^[!-~]+(?![\s\S])"
"""Printable ASCII without spaces (0x21 to 0x7E): a space or a control character would make
the ``Authorization`` header ambiguous or invalid."""
CRM_KEY_RULE = (
    f"{MIN_CRM_KEY_LENGTH} to {MAX_CRM_KEY_LENGTH} printable ASCII characters, without spaces"
)
"""The rule in words, for every refusal: the words never include the key."""

CrmKey = Annotated[
    str,
    Meta(
        min_length=MIN_CRM_KEY_LENGTH,
        max_length=MAX_CRM_KEY_LENGTH,
        pattern=CRM_KEY_PATTERN,
        description=f"{CRM_KEY_RULE}; sent as `Authorization: Bearer <crmKey>`.",
    ),
]
PlainId = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
ChannelName = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)]


class SubscriptionsInput(msgspec.Struct):
    """The switches of a ``PATCH /v3/webhooks``: each one given is a JSON boolean; those
    not given keep their values. Other keys are ignored."""

    messagesAndStatuses: bool | UnsetType = UNSET
    contactsAndDealsCreation: bool | UnsetType = UNSET
    channelsUpdates: bool | UnsetType = UNSET
    templateStatus: bool | UnsetType = UNSET


class WebhookSettingsInput(msgspec.Struct):
    """The body of ``PATCH /v3/webhooks``. Other keys are ignored."""

    webhooksUri: Uri
    subscriptions: SubscriptionsInput = msgspec.field(default_factory=SubscriptionsInput)


class CrmKeyInput(msgspec.Struct):
    """The body of ``PUT /sandbox/crm-key``: the key, or ``null`` to clear it."""

    crmKey: CrmKey | None


class ChannelInput(msgspec.Struct):
    """One channel of ``PUT /sandbox/channels`` (and ``crmdeals channels set``), as sent.
    ``null`` is the same as leaving a field out. Other keys are ignored."""

    transport: Transport
    channelId: uuid.UUID | None = None
    """Any version, in canonical form or as 32 hex digits; a new uuid4 when absent."""
    plainId: PlainId | None = None
    state: ChannelState | None = None
    """``active`` when absent."""
    name: ChannelName | None = None


ChannelBatch = Annotated[list[ChannelInput], Meta(max_length=MAX_ENTITIES)]
"""A whole set of channels, in its order."""


@dataclass(frozen=True)
class SettingsChange:
    """A valid ``PATCH /v3/webhooks``: the address, and the switches it gives."""

    uri: str
    switches: dict[str, bool]
    """By their ``subscriptions`` name, only those the body holds."""


_object_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_uri_decoder = msgspec.json.Decoder(Uri)
_crm_key_decoder = msgspec.json.Decoder(CrmKey | None)
_subscriptions_decoder = msgspec.json.Decoder(SubscriptionsInput)
_channel_decoder = msgspec.json.Decoder(ChannelInput)
_SWITCHES_FIELD = tuple(
    info
    for info in msgspec.structs.fields(WebhookSettingsInput)
    if info.encode_name == "subscriptions"
)
_CHANNEL_FIELDS = msgspec.structs.fields(ChannelInput)
_NOT_AN_OBJECT = "The body must be a JSON object."
_URI_NOT_VALID = (
    "webhooksUri must be an absolute http:// or https:// URL of at most 200 characters."
)


def parse_settings_change(body: bytes) -> SettingsChange:
    """The address and switches of a ``PATCH /v3/webhooks`` body, in the contract's order:
    ``InvalidJson`` for a body that is not JSON; ``InvalidRequest`` when it, or its
    ``subscriptions``, is not an object, or a switch is not a JSON boolean; then
    ``UriNotValid`` when ``webhooksUri`` is missing, ``null`` or not an absolute http(s)
    URL of at most 200 characters."""
    fields = parse_json(body, _object_decoder, wrong_shape=_NOT_AN_OBJECT)
    problems = field_problems(fields, _SWITCHES_FIELD)
    if problems:
        raise InvalidRequest("The subscriptions are invalid; nothing was changed.", problems)
    uri = _http_url(fields.get("webhooksUri"))
    if uri is None:
        raise UriNotValid(_URI_NOT_VALID)
    subscriptions = (
        _subscriptions_decoder.decode(fields["subscriptions"])
        if "subscriptions" in fields
        else SubscriptionsInput()
    )
    switches = {
        name: on
        for name, on in msgspec.structs.asdict(subscriptions).items()
        if not isinstance(on, UnsetType)
    }
    return SettingsChange(uri=uri, switches=switches)


def _http_url(raw: msgspec.Raw | None) -> str | None:
    """The address ``raw`` holds if it is an absolute http(s) URL of at most 200 characters
    with a host and, if any, a valid port; else ``None``."""
    if raw is None:
        return None
    try:
        uri = _uri_decoder.decode(raw)
        parts = urlsplit(uri)
        valid = bool(parts.hostname) and parts.port != 0
    except (msgspec.ValidationError, ValueError):  # ValueError: a port out of range
        return None
    return uri if valid else None


def parse_crm_key(body: bytes) -> str | None:
    """The key of a ``PUT /sandbox/crm-key`` body (``None``: clear it); ``InvalidJson`` or
    ``InvalidRequest``, which never repeats the key."""
    fields = parse_json(body, _object_decoder, wrong_shape=_NOT_AN_OBJECT)
    if "crmKey" not in fields:
        raise InvalidRequest("The crm key is missing.", {"crmKey": "Required field is missing"})
    try:
        return _crm_key_decoder.decode(fields["crmKey"])
    except msgspec.ValidationError:
        raise InvalidRequest(
            "The crm key is invalid; nothing was changed.",
            {"crmKey": f"Expected a string of {CRM_KEY_RULE}, or null"},
        ) from None


def check_crm_key(text: str) -> str:
    """``text`` if it is a valid crm key, else ``ValueError(CRM_KEY_RULE)``: the command
    line's check of the key it read."""
    try:
        return msgspec.convert(text, CrmKey)
    except msgspec.ValidationError:
        raise ValueError(CRM_KEY_RULE) from None


def parse_channels(body: bytes) -> list[Channel]:
    """The channels of a whole set, in its order, each with its id (lowercase canonical, or
    a new uuid4) and its state (``active`` when not given).

    Raises ``InvalidJson``; ``InvalidRequest`` when the body is not an array, names every
    invalid field by path (``body[2].transport``), or names each item whose ``channelId``
    an earlier item has; ``TooManyEntities`` for more than 100 channels, before anything
    else in the body is read.
    """
    text = body_text(body)
    try:
        raws = _array_decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise InvalidRequest("The body must be a JSON array.", {"body": str(exc)}) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise not_json(exc, text) from None
    if len(raws) > MAX_ENTITIES:
        raise TooManyEntities(len(raws))
    problems: dict[str, str] = {}
    for index, raw in enumerate(raws):
        try:
            fields = _object_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            problems[f"body[{index}]"] = str(exc)
            continue
        found = field_problems(fields, _CHANNEL_FIELDS)
        problems |= {f"body[{index}].{name}": reason for name, reason in found.items()}
    if problems:
        raise InvalidRequest("Some channels are invalid; nothing was changed.", problems)
    channels = [_channel(_channel_decoder.decode(raw)) for raw in raws]
    first_index: dict[str, int] = {}
    for index, channel in enumerate(channels):  # a new uuid4 repeats none
        first = first_index.setdefault(channel.channelId, index)
        if first != index:
            problems[f"body[{index}].channelId"] = f"The same channelId as body[{first}]"
    if problems:
        raise InvalidRequest("A channelId is repeated; nothing was changed.", problems)
    return channels


def _channel(sent: ChannelInput) -> Channel:
    channel_id = sent.channelId or uuid.uuid4()
    return Channel(
        channelId=str(channel_id),
        transport=sent.transport,
        plainId=sent.plainId,
        state=sent.state or "active",
        name=sent.name,
    )
