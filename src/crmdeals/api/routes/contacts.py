"""The contacts' five routes (CRM section 2), the deals' routes for another entity: each
reads top to bottom, account, body, validation, storage, response. What differs is the
entity (``crmdeals.contacts``) and the error codes (``INVALID_CONTACTS_DATA``,
``CONTACT_NOT_FOUND``)."""

from typing import Any

from fastapi import APIRouter, Request, Response

from crmdeals.api import openapi
from crmdeals.api.body import read_body
from crmdeals.api.deps import AccountDep, SettingsDep, StoreDep
from crmdeals.api.resource import empty_response, json_response, page_offset, path_id
from crmdeals.contacts.validation import parse_contact_batch, parse_contact_id_batch
from crmdeals.errors import ContactNotFound
from crmdeals.limits import MAX_CONTACT_CHATS, MAX_ENTITIES, PAGE_SIZE

router = APIRouter(prefix="/v3/contacts", tags=["contacts"])

_INVALID = (
    "The body or the query is invalid (`TOO_MANY_ENTITIES`, `INVALID_CONTACTS_DATA`, "
    "`INVALID_JSON`, `INVALID_REQUEST`); nothing was changed."
)
_NOT_FOUND = "No such contact in the account (`CONTACT_NOT_FOUND`)."


def _responses(
    ok: str, *errors: int, schema: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``openapi.responses``, with the contacts' own 400 and 404."""
    documented = openapi.responses(ok, *errors, schema=schema)
    for status, description in ((400, _INVALID), (404, _NOT_FOUND)):
        if status in documented:
            documented[status]["description"] = description
    return documented


@router.post(
    "",
    summary="Upload (upsert) up to 100 contacts",
    response_class=Response,
    openapi_extra=openapi.json_body(
        openapi.CONTACT_BATCH,
        f"Up to {MAX_ENTITIES} contacts, each with 1 to {MAX_CONTACT_CHATS} chats. New ids "
        "are added, known ids fully replaced (their chats included); the same id twice: the "
        "last one wins. All or nothing.",
    ),
    responses=_responses("Stored; empty body.", 400, 413),
)
async def upload_contacts(
    request: Request, account_id: AccountDep, settings: SettingsDep, store: StoreDep
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    contacts = parse_contact_batch(body)
    await store.upsert_contacts(account_id=account_id, contacts=contacts)
    return empty_response()


@router.get(
    "",
    summary="List contacts, 100 a page, in id order",
    response_class=Response,
    description="`count` is the account's total number of contacts.",
    openapi_extra={"parameters": [openapi.offset_parameter("contacts")]},
    responses=_responses("A page of contacts.", 400, schema=openapi.CONTACTS_PAGE),
)
async def list_contacts(request: Request, account_id: AccountDep, store: StoreDep) -> Response:
    offset = page_offset(request)
    page = await store.list_contacts(account_id=account_id, offset=offset, limit=PAGE_SIZE)
    return json_response(page)


@router.patch(
    "/bulk_delete",
    summary="Delete up to 100 contacts",
    response_class=Response,
    openapi_extra=openapi.json_body(openapi.CONTACT_ID_BATCH, f"Up to {MAX_ENTITIES} contact ids."),
    responses=_responses(
        "Deleted; the listed ids that did not exist.", 400, 413, schema=openapi.ID_LIST
    ),
)
async def bulk_delete_contacts(
    request: Request, account_id: AccountDep, settings: SettingsDep, store: StoreDep
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    contact_ids = parse_contact_id_batch(body)
    missing = await store.delete_contacts(account_id=account_id, contact_ids=contact_ids)
    return json_response(missing)


@router.get(
    "/{contact_id:any_text}",
    summary="Get one contact",
    response_class=Response,
    responses=_responses("The contact.", 404, schema=openapi.CONTACT),
)
async def get_contact(
    request: Request, account_id: AccountDep, store: StoreDep, contact_id: str
) -> Response:
    sent_id = path_id(request, contact_id)
    contact = None
    if sent_id.storable is not None:
        contact = await store.get_contact(account_id=account_id, contact_id=sent_id.storable)
    if contact is None:
        raise ContactNotFound(sent_id.shown)
    return json_response(contact)


@router.delete(
    "/{contact_id:any_text}",
    summary="Delete one contact",
    response_class=Response,
    responses=_responses("Deleted; empty body.", 404),
)
async def delete_contact(
    request: Request, account_id: AccountDep, store: StoreDep, contact_id: str
) -> Response:
    sent_id = path_id(request, contact_id)
    deleted = sent_id.storable is not None and await store.delete_contact(
        account_id=account_id, contact_id=sent_id.storable
    )
    if not deleted:
        raise ContactNotFound(sent_id.shown)
    return empty_response()
