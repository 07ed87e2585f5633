"""The OpenAPI document: FastAPI's, with the bodies and responses described by the msgspec
types that the routes really use (the routes read raw bodies, so FastAPI cannot see them)."""

from typing import Any, get_args

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from crmdeals import __version__
from crmdeals.api.envelope import ErrorBody
from crmdeals.chat_window import ChatWindowRequest, ChatWindowUrl
from crmdeals.contacts.schemas import ChatType, ContactBatch, ContactIdBatch, ContactsPage
from crmdeals.contacts.schemas import Contact as ContactSchema
from crmdeals.deals.schemas import Deal as DealSchema
from crmdeals.deals.schemas import DealBatch, DealIdBatch, DealsPage
from crmdeals.drift.schemas import DriftPage
from crmdeals.fields import PHONE_PATTERN
from crmdeals.limits import MAX_ID_LENGTH, MAX_PHONE_DIGITS, MIN_PHONE_DIGITS
from crmdeals.panel import PanelLink, PanelLinkRequest
from crmdeals.pipelines.schemas import Pipeline, PipelineBatch
from crmdeals.sandbox import Fault, LoggedRequest
from crmdeals.users.schemas import User as UserSchema
from crmdeals.users.schemas import UserBatch, UserIdBatch
from crmdeals.webhooks.schemas import (
    Channel,
    DealButtonTrigger,
    DeliveriesPage,
    Delivery,
    EventAnswer,
    MessageTrigger,
    StatusTrigger,
    Subscriptions,
)
from crmdeals.webhooks.validation import ChannelBatch, CrmKeyInput, WebhookSettingsInput

_REF = "#/components/schemas/{name}"
_SCHEMAS, _COMPONENTS = msgspec.json.schema_components(
    [
        DealBatch,
        DealIdBatch,
        DealsPage,
        DealSchema,
        ErrorBody,
        list[str],
        PanelLinkRequest,
        PanelLink,
    ],
    ref_template=_REF,
)
_DEAL_BATCH, _ID_BATCH, DEALS_PAGE, DEAL, ERROR, ID_LIST, PANEL_LINK_REQUEST, PANEL_LINK = _SCHEMAS
_SANDBOX_SCHEMAS, _SANDBOX_COMPONENTS = msgspec.json.schema_components(
    [Fault, list[Fault], list[LoggedRequest]], ref_template=_REF
)
FAULT, FAULT_LIST, LOGGED_REQUESTS = _SANDBOX_SCHEMAS
"""The sandbox's answers, in the document only when its routes exist (sandbox mode)."""
# The bodies go to components too and are referenced from the routes: FastAPI reads an
# `openapi_extra` schema through float-typed models, which would turn 2**63 - 1 into 9.2e18.
_COMPONENTS |= {"DealBatch": _DEAL_BATCH, "DealIdBatch": _ID_BATCH}
DEAL_BATCH = {"$ref": _REF.format(name="DealBatch")}
ID_BATCH = {"$ref": _REF.format(name="DealIdBatch")}
_NO_NUL = r"^[^\x00]*$"


_INTEGER_ID = (
    "Written as a JSON integer literal, without a fraction or an exponent (`1.0` and `1e0` "
    "are refused, as are integers beyond 64 bits); normalised to its decimal string."
)
_CLIENT_RULES = {"string": ("pattern", _NO_NUL), "integer": ("description", _INTEGER_ID)}
"""What the types of a body cannot say, by JSON Schema type: strings refuse U+0000 (the
server checks it apart from the types, which would otherwise run a pattern over every
string); integer ids must be written as integers (JSON Schema counts ``1.0`` as one)."""


def _add_client_rules(schema: Any) -> None:
    """Add ``_CLIENT_RULES`` to every string and integer schema within ``schema``."""
    if isinstance(schema, dict):
        rule = _CLIENT_RULES.get(str(schema.get("type")))
        if rule is not None:
            schema.setdefault(*rule)
        for value in schema.values():
            _add_client_rules(value)
    elif isinstance(schema, list):
        for value in schema:
            _add_client_rules(value)


for _sent_by_clients in ("DealInput", "DealIdBatch", "PanelLinkRequest"):
    _add_client_rules(_COMPONENTS[_sent_by_clients])

# -- pipelines and the drift report: components of their own, merged into the document's
_PIPELINE_SCHEMAS, _PIPELINE_COMPONENTS = msgspec.json.schema_components(
    [PipelineBatch, list[Pipeline], DriftPage], ref_template=_REF
)
_PIPELINE_BATCH, PIPELINE_LIST, DRIFT_PAGE = _PIPELINE_SCHEMAS
for _sent_by_clients in ("PipelineInput", "StageInput"):
    _add_client_rules(_PIPELINE_COMPONENTS[_sent_by_clients])
_COMPONENTS |= _PIPELINE_COMPONENTS | {"PipelineBatch": _PIPELINE_BATCH}
PIPELINE_BATCH = {"$ref": _REF.format(name="PipelineBatch")}

# -- contacts: components of their own, merged into the document's. A chat's rules depend
# on its chatType, which msgspec's types cannot say: the chat's schema is written here, one
# branch per group of chat types, so that what it accepts is exactly what the server does.
_CONTACT_SCHEMAS, _CONTACT_COMPONENTS = msgspec.json.schema_components(
    [ContactBatch, ContactIdBatch, ContactsPage, ContactSchema], ref_template=_REF
)
_CONTACT_BATCH, _CONTACT_ID_BATCH, CONTACTS_PAGE, CONTACT = _CONTACT_SCHEMAS
_add_client_rules(_CONTACT_COMPONENTS["ContactInput"])
_add_client_rules(_CONTACT_ID_BATCH)


def _chat_schema() -> dict[str, Any]:
    """``ContactDataInput``: the fields' types, then the rules of each chat type."""
    digits = f"{MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} ASCII digits"
    id_string = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": _NO_NUL}
    id_integer = {
        "type": "integer",
        "minimum": -(2**63),
        "maximum": 2**63 - 1,
        "description": _INTEGER_ID,
    }
    phone = {"type": "string", "pattern": PHONE_PATTERN, "description": digits}
    handle = {  # no leading "@", no U+0000
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_LENGTH,
        "pattern": r"^[^@\x00][^\x00]*$",
    }
    null = {"type": "null"}
    present = {"not": null}

    def chat_types(*names: str) -> dict[str, Any]:
        return {"enum": list(names)}

    without_handles = {"username": null, "phone": null}
    return {
        "title": "ContactDataInput",
        "type": "object",
        "properties": {
            "chatType": chat_types(*get_args(ChatType)),
            "chatId": {"anyOf": [id_string, id_integer, null]},
            "username": {"anyOf": [handle, null]},
            "phone": {"anyOf": [phone, null]},
        },
        "required": ["chatType"],
        "oneOf": [
            {
                "description": f"`whatsapp`, `viber`: `chatId` is a phone, {digits}.",
                "properties": {
                    "chatType": chat_types("whatsapp", "viber"),
                    "chatId": {
                        "anyOf": [
                            {**id_string, "pattern": PHONE_PATTERN},
                            {
                                **id_integer,
                                "minimum": 10 ** (MIN_PHONE_DIGITS - 1),
                                "maximum": 10**MAX_PHONE_DIGITS - 1,
                            },
                        ]
                    },
                    **without_handles,
                },
                "required": ["chatId"],
            },
            {
                "description": "`instagram`: `chatId` without a leading `@`.",
                "properties": {
                    "chatType": chat_types("instagram"),
                    "chatId": {"anyOf": [handle, id_integer]},
                    **without_handles,
                },
                "required": ["chatId"],
            },
            {
                "description": "Groups, `vk`, `avito`: `chatId` required.",
                "properties": {
                    "chatType": chat_types("whatsgroup", "telegroup", "vk", "avito", "maxgroup"),
                    "chatId": {"anyOf": [id_string, id_integer]},
                    **without_handles,
                },
                "required": ["chatId"],
            },
            {
                "description": "`telegram`, `max`: `chatId`, `username` or `phone`, or more.",
                "properties": {"chatType": chat_types("telegram", "max")},
                "anyOf": [
                    {"required": [name], "properties": {name: present}}
                    for name in ("chatId", "username", "phone")
                ],
            },
        ],
    }


_CONTACT_COMPONENTS["ContactDataInput"] = _chat_schema()
_COMPONENTS |= _CONTACT_COMPONENTS | {
    "ContactBatch": _CONTACT_BATCH,
    "ContactIdBatch": _CONTACT_ID_BATCH,
}
CONTACT_BATCH = {"$ref": _REF.format(name="ContactBatch")}
CONTACT_ID_BATCH = {"$ref": _REF.format(name="ContactIdBatch")}

# -- users: components of their own, merged into the document's
_USER_SCHEMAS, _USER_COMPONENTS = msgspec.json.schema_components(
    [UserBatch, UserIdBatch, UserSchema, list[UserSchema]], ref_template=_REF
)
_USER_BATCH, _USER_ID_BATCH, USER, USER_LIST = _USER_SCHEMAS
_add_client_rules(_USER_COMPONENTS["UserInput"])
_add_client_rules(_USER_ID_BATCH)
_COMPONENTS |= _USER_COMPONENTS | {"UserBatch": _USER_BATCH, "UserIdBatch": _USER_ID_BATCH}
USER_BATCH = {"$ref": _REF.format(name="UserBatch")}
USER_ID_BATCH = {"$ref": _REF.format(name="UserIdBatch")}

# -- webhooks: the delivery log, and the sandbox's triggers (in the document only in
# sandbox mode, as the sandbox's other answers)
_LOG_SCHEMAS, _LOG_COMPONENTS = msgspec.json.schema_components(
    [DeliveriesPage, Delivery], ref_template=_REF
)
DELIVERIES_PAGE, DELIVERY = _LOG_SCHEMAS
_COMPONENTS |= _LOG_COMPONENTS
_TRIGGER_SCHEMAS, _TRIGGER_COMPONENTS = msgspec.json.schema_components(
    [EventAnswer, MessageTrigger, StatusTrigger, DealButtonTrigger], ref_template=_REF
)
EVENT_ANSWER, MESSAGE_TRIGGER, STATUS_TRIGGER, DEAL_BUTTON_TRIGGER = _TRIGGER_SCHEMAS
for _sent_by_clients in ("MessageTrigger", "StatusTrigger", "DealButtonTrigger", "StatusError"):
    _add_client_rules(_TRIGGER_COMPONENTS[_sent_by_clients])
# The rules between fields, which the types cannot say: a message has a text or a file; a
# status's `error` comes with status `error` and only with it.
_TRIGGER_COMPONENTS["MessageTrigger"]["anyOf"] = [
    {"required": [field], "properties": {field: {"type": "string"}}}
    for field in ("text", "contentUri")
]
_TRIGGER_COMPONENTS["StatusTrigger"]["anyOf"] = [
    {
        "required": ["status", "error"],
        "properties": {"status": {"const": "error"}, "error": {"type": "object"}},
    },
    {
        "properties": {
            "status": {"enum": ["sent", "delivered", "read", "edited"]},
            "error": {"type": "null"},
        }
    },
]
_SANDBOX_COMPONENTS |= _TRIGGER_COMPONENTS

# -- the chat window: components of their own, merged into the document's
_CHAT_WINDOW_SCHEMAS, _CHAT_WINDOW_COMPONENTS = msgspec.json.schema_components(
    [ChatWindowRequest, ChatWindowUrl], ref_template=_REF
)
CHAT_WINDOW_REQUEST, CHAT_WINDOW_URL = _CHAT_WINDOW_SCHEMAS
for _sent_by_clients in (
    "ChatWindowRequest",
    "WindowUserInput",
    "FilterChatInput",
    "ActiveChatInput",
    "OptionsInput",
):
    _add_client_rules(_CHAT_WINDOW_COMPONENTS[_sent_by_clients])
# `filter` is required with scope `card` (and read only then), which its type cannot say.
_CHAT_WINDOW_COMPONENTS["ChatWindowRequest"]["anyOf"] = [
    {
        "required": ["scope", "filter"],
        "properties": {"scope": {"const": "card"}, "filter": {"type": "array"}},
    },
    {"properties": {"scope": {"const": "global"}}},
]
_COMPONENTS |= _CHAT_WINDOW_COMPONENTS

# -- webhook settings and channels; the crm key and the channels' body are the sandbox's
_SETTINGS_SCHEMAS, _SETTINGS_COMPONENTS = msgspec.json.schema_components(
    [WebhookSettingsInput, list[Channel]], ref_template=_REF
)
WEBHOOK_SETTINGS_INPUT, CHANNEL_LIST = _SETTINGS_SCHEMAS
_add_client_rules(_SETTINGS_COMPONENTS["WebhookSettingsInput"])
_SWITCH_NAMES = [*msgspec.structs.asdict(Subscriptions()), "wabaTemplatesStatus"]
_SETTINGS_COMPONENTS["WebhookSettings"] = {
    "title": "WebhookSettings",
    "type": "object",
    "properties": {
        "webhooksUri": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "subscriptions": {
            "type": "object",
            "properties": {name: {"type": "boolean"} for name in _SWITCH_NAMES},
            "required": _SWITCH_NAMES,
        },
    },
    "required": ["webhooksUri", "subscriptions"],
}
_COMPONENTS |= _SETTINGS_COMPONENTS
WEBHOOK_SETTINGS = {"$ref": _REF.format(name="WebhookSettings")}
_SANDBOX_WEBHOOK_SCHEMAS, _SANDBOX_WEBHOOK_COMPONENTS = msgspec.json.schema_components(
    [CrmKeyInput, ChannelBatch], ref_template=_REF
)
CRM_KEY_INPUT, CHANNEL_BATCH = _SANDBOX_WEBHOOK_SCHEMAS
_add_client_rules(_SANDBOX_WEBHOOK_COMPONENTS["ChannelInput"])
_SANDBOX_COMPONENTS |= _SANDBOX_WEBHOOK_COMPONENTS

_ERRORS = {
    400: "The body or the query is invalid (`TOO_MANY_ENTITIES`, `INVALID_DEALS_DATA`, "
    "`INVALID_JSON`, `INVALID_REQUEST`); nothing was changed.",
    401: "Missing, unknown or revoked API key (`UNAUTHORIZED`).",
    404: "No such deal in the account (`DEAL_NOT_FOUND`).",
    413: "The body is larger than the limit (`PAYLOAD_TOO_LARGE`).",
    429: "Over the rate limit (`TOO_MANY_REQUESTS`); see the `Retry-After` header.",
    503: "The database is unreachable or too busy (`SERVICE_UNAVAILABLE`); retry after "
    "`Retry-After` seconds (every route is safe to repeat).",
}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An ``openapi_extra`` request body: JSON, whatever ``Content-Type`` says."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


def offset_parameter(plural: str) -> dict[str, Any]:
    """The ``offset`` query parameter of a list (``api.resource.page_offset`` reads it)."""
    return {
        "name": "offset",
        "in": "query",
        "required": False,
        "description": f"How many {plural} to skip.",
        "schema": {"type": "integer", "minimum": 0, "default": 0},
    }


def responses(
    ok: str,
    *errors: int,
    schema: dict[str, Any] | None = None,
    described: dict[int, str] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """The documented responses of an API route: 200 (with ``schema``, if it has a body),
    401, 429, 503 and the given ``errors``; ``described``: the route's own descriptions of
    some of them (another entity's codes), instead of the deals routes'."""
    documented: dict[int | str, dict[str, Any]] = {200: {"description": ok}}
    if schema is not None:
        documented[200]["content"] = {"application/json": {"schema": schema}}
    for status in sorted({*errors, 401, 429, 503}):
        documented[status] = {
            "description": (described or {}).get(status, _ERRORS[status]),
            "content": {"application/json": {"schema": ERROR}},
        }
    documented[429]["headers"] = {
        "Retry-After": {
            "description": "Seconds until the window resets (at least 1).",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
    documented[503]["headers"] = {
        "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
    }
    return documented


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title="crmdeals",
        version=__version__,
        summary="The Deals API of a chat platform: upload deals from a CRM, read them back.",
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_COMPONENTS)
    if any(path.startswith("/sandbox/") for path in document["paths"]):
        schemas.update(_SANDBOX_COMPONENTS)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)  # FastAPI's 422, which this API never sends
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "`Bearer <key>`"},
        "basic": {
            "type": "http",
            "scheme": "basic",
            "description": "`Basic <key>`, or standard Basic with the key as the user name.",
        },
    }
    for path, operations in document["paths"].items():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            if path.startswith(("/v3/", "/sandbox/", "/crmdeals/")):
                operation["security"] = [{"bearer": []}, {"basic": []}]
    for plural in ("deals", "contacts", "users"):
        _document_the_one_named_bulk_delete(document["paths"], plural)
    return document


def _document_the_one_named_bulk_delete(paths: dict[str, Any], plural: str) -> None:
    """``GET`` and ``DELETE /v3/deals/bulk_delete`` reach the deal whose id is
    ``bulk_delete`` (every id is reachable), and the same for contacts. OpenAPI matches a
    concrete path before a template, so without these operations that path would seem to
    take ``PATCH`` alone."""
    singular = plural.removesuffix("s")
    one = paths[f"/v3/{plural}/{{{singular}_id}}"]
    bulk_delete = paths[f"/v3/{plural}/bulk_delete"]
    for method in ("get", "delete"):
        operation = {key: value for key, value in one[method].items() if key != "parameters"}
        operation["summary"] += f" (the {singular} whose id is `bulk_delete`)"
        operation["operationId"] += "_named_bulk_delete"
        bulk_delete[method] = operation
