"""The sandbox's triggers (CRM section 7; ``CRMDEALS_SANDBOX=1`` only): make the events a
live account makes when a client writes, a message changes status or a rep clicks the
chat window's "+", for the calling account, so a CRM can test its webhook handler without
a phone. Each answers the event's deliveries (``crmdeals.webhooks.events``); with
``"wait": true``, once they are delivered, failed or waiting for a retry."""

from typing import Any, TypeVar

import msgspec
from fastapi import APIRouter, Request, Response

from crmdeals.api import openapi
from crmdeals.api.body import parse_json_object, read_body
from crmdeals.api.deps import AccountDep, EventsDep, SettingsDep
from crmdeals.api.resource import json_response
from crmdeals.contacts.schemas import ChatType
from crmdeals.contacts.validation import chat_problems
from crmdeals.errors import InvalidRequest
from crmdeals.fields import IdInput, id_text
from crmdeals.settings import Settings
from crmdeals.webhooks.events import Events
from crmdeals.webhooks.schemas import (
    DealButtonTrigger,
    EventAnswer,
    MessageTrigger,
    StatusTrigger,
)

router = APIRouter(prefix="/sandbox", tags=["sandbox"])
TriggerT = TypeVar("TriggerT", bound=msgspec.Struct)

WAITS_FOR_ATTEMPTS = 3
"""With ``"wait": true`` a trigger waits at most this many attempts' timeouts (an event
has at most three deliveries, attempted one after the other), then answers anyway."""


def _answers(what: str) -> dict[int | str, dict[str, Any]]:
    return openapi.responses(
        f"The event: its id, {what}, the deliveries it made (`id`, `kind`) in the order they "
        "are sent, and the kinds it skipped with the reason (`subscriptionOff`, "
        "`noWebhooksUri`, `noPipelineStages`, `noUsers`, `dealExists`).",
        400,
        413,
        schema=openapi.EVENT_ANSWER,
    )


@router.post(
    "/messages",
    summary="A new client writes in a chat",
    description="`messages` when `messagesAndStatuses` is on. Then, when "
    "`contactsAndDealsCreation` is on and a pipeline with stages exists: no contact holds "
    "the chat: `createContact` (`source: auto`, named `name` or the chatId), then "
    "`createDeal` with the contact the CRM answers with; a contact that no deal lists: "
    "`createDeal`; a deal lists one: nothing. The responsible user is `userId`, else the "
    "account's users in turn by id. `channelId` defaults to the first channel serving the "
    "chat type (`CHANNEL_NOT_FOUND` when none does, or for an unknown id). Give `text`, "
    "`contentUri` or both.",
    response_class=Response,
    responses=_answers("the message's `messageId`"),
    openapi_extra=openapi.json_body(openapi.MESSAGE_TRIGGER, "The message."),
)
async def message(
    request: Request, account_id: AccountDep, settings: SettingsDep, events: EventsDep
) -> Response:
    wanted = await _trigger(request, settings, MessageTrigger)
    chat_id = _checked_chat(wanted.chatType, wanted.chatId)
    if wanted.text is None and wanted.contentUri is None:
        raise InvalidRequest(
            "A message has a text, a file or both.", {"text": "give `text` or `contentUri`"}
        )
    answer = await events.message(
        account_id=account_id,
        chat_type=wanted.chatType,
        chat_id=chat_id,
        text=wanted.text,
        content_uri=wanted.contentUri,
        name=wanted.name,
        channel_id=wanted.channelId,
        user_id=None if wanted.userId is None else id_text(wanted.userId),
    )
    return await _answer(answer, wanted.wait, events, settings)


@router.post(
    "/statuses",
    summary="An outgoing message changes status",
    description="`statuses` when `messagesAndStatuses` is on. `messageId` defaults to a new "
    "uuid4; `error` (`{error, description}`) comes with status `error` and only with it.",
    response_class=Response,
    responses=_answers("the message's `messageId`"),
    openapi_extra=openapi.json_body(openapi.STATUS_TRIGGER, "The new status."),
)
async def status(
    request: Request, account_id: AccountDep, settings: SettingsDep, events: EventsDep
) -> Response:
    wanted = await _trigger(request, settings, StatusTrigger)
    if (wanted.status == "error") != (wanted.error is not None):
        raise InvalidRequest(
            "`error` comes with status `error`, and only with it.",
            {"error": "required with status `error`, refused with any other"},
        )
    answer = await events.status(
        account_id=account_id, status=wanted.status, message_id=wanted.messageId, error=wanted.error
    )
    return await _answer(answer, wanted.wait, events, settings)


@router.post(
    "/deal-button",
    summary='A rep clicks the "+" of the chat window\'s Deals dropdown',
    description="`createContact` (`source: byUser`) when no contact holds the chat, then "
    "always `createDeal`, with `userId` (a user of the account, else `INVALID_USER`) "
    "responsible. Needs a webhook address and `contactsAndDealsCreation`, not pipelines.",
    response_class=Response,
    responses=_answers("`messageId: null`"),
    openapi_extra=openapi.json_body(openapi.DEAL_BUTTON_TRIGGER, "Who clicked, in which chat."),
)
async def deal_button(
    request: Request, account_id: AccountDep, settings: SettingsDep, events: EventsDep
) -> Response:
    wanted = await _trigger(request, settings, DealButtonTrigger)
    chat_id = _checked_chat(wanted.chatType, wanted.chatId)
    answer = await events.deal_button(
        account_id=account_id,
        user_id=id_text(wanted.userId),
        chat_type=wanted.chatType,
        chat_id=chat_id,
        name=wanted.name,
        channel_id=wanted.channelId,
    )
    return await _answer(answer, wanted.wait, events, settings)


async def _trigger(request: Request, settings: Settings, trigger: type[TriggerT]) -> TriggerT:
    body = await read_body(request, settings.max_body_bytes)
    return parse_json_object(body, trigger, invalid="The event is invalid.")


def _checked_chat(chat_type: ChatType, chat_id: IdInput) -> str:
    """The chat's id, normalised, if a contact's ``contactData`` could hold the chat (the
    CRM is asked to create one for it)."""
    text = id_text(chat_id)
    problems = chat_problems(chat_type, text)
    if problems:
        raise InvalidRequest("The chat is invalid.", problems)
    return text


async def _answer(answer: EventAnswer, wait: bool, events: Events, settings: Settings) -> Response:
    if wait:
        await events.wait_settled(answer, WAITS_FOR_ATTEMPTS * settings.webhooks_timeout_seconds)
    return json_response(answer)
