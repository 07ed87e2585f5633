"""The users' routes (CRM section 1), on the model of ``routes/deals.py``: account, body,
validation, storage, response. The list is a plain array of every user, by name then id;
the store checks what depends on the stored users (one phone per user, the user limit)."""

from fastapi import APIRouter, Request, Response

from crmdeals.api import openapi
from crmdeals.api.body import read_body
from crmdeals.api.deps import AccountDep, SettingsDep, StoreDep
from crmdeals.api.resource import empty_response, json_response, path_id
from crmdeals.errors import UserNotFound
from crmdeals.limits import MAX_ENTITIES, MAX_USER_ID_LENGTH
from crmdeals.users.validation import parse_indexed_user_batch, parse_user_id_batch

router = APIRouter(prefix="/v3/users", tags=["users"])

_UPLOAD_ERRORS = {
    400: "The body is invalid (`TOO_MANY_ENTITIES`, `INVALID_USERS_DATA`, `INVALID_JSON`, "
    "`INVALID_REQUEST`), two users would share a phone (`DUPLICATE_PHONE_NUMBER`), or the "
    "account would hold more users than its limit (`USER_LIMIT_EXCEEDED`); nothing was "
    "changed.",
}
_BULK_DELETE_ERRORS = {
    400: "The body is invalid (`TOO_MANY_ENTITIES`, `INVALID_JSON`, `INVALID_REQUEST`); "
    "nothing was deleted.",
}
_NOT_FOUND = {404: "No such user in the account (`USER_NOT_FOUND`)."}


@router.post(
    "",
    summary="Upload (upsert) up to 100 users",
    response_class=Response,
    openapi_extra=openapi.json_body(
        openapi.USER_BATCH,
        f"Up to {MAX_ENTITIES} users. New ids are added, known ids fully replaced (a user "
        "sent without a phone loses it); the same id twice: the last one wins. All or "
        "nothing: no two users of the account may end up with one phone, and an upload may "
        "not take the account past its user limit.",
    ),
    responses=openapi.responses("Stored; empty body.", 400, 413, described=_UPLOAD_ERRORS),
)
async def upload_users(
    request: Request, account_id: AccountDep, settings: SettingsDep, store: StoreDep
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    indexed = parse_indexed_user_batch(body)
    await store.upsert_users(
        account_id=account_id,
        users=[user for _, user in indexed],
        indexes=[index for index, _ in indexed],
        limit=settings.user_limit,
    )
    return empty_response()


@router.get(
    "",
    summary="List every user, by name then id",
    response_class=Response,
    description="A plain array of all the account's users (the user limit bounds it), "
    "sorted by `name`, then `id`, in code point order. An `offset` is ignored.",
    responses=openapi.responses("Every user.", schema=openapi.USER_LIST),
)
async def list_users(account_id: AccountDep, store: StoreDep) -> Response:
    return json_response(await store.list_users(account_id=account_id))


@router.patch(
    "/bulk_delete",
    summary="Delete up to 100 users",
    response_class=Response,
    openapi_extra=openapi.json_body(openapi.USER_ID_BATCH, f"Up to {MAX_ENTITIES} user ids."),
    responses=openapi.responses(
        "Deleted; the listed ids that did not exist.",
        400,
        413,
        schema=openapi.ID_LIST,
        described=_BULK_DELETE_ERRORS,
    ),
)
async def bulk_delete_users(
    request: Request, account_id: AccountDep, settings: SettingsDep, store: StoreDep
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    user_ids = parse_user_id_batch(body)
    missing = await store.delete_users(account_id=account_id, user_ids=user_ids)
    return json_response(missing)


@router.get(
    "/{user_id:any_text}",
    summary="Get one user",
    response_class=Response,
    responses=openapi.responses("The user.", 404, schema=openapi.USER, described=_NOT_FOUND),
)
async def get_user(
    request: Request, account_id: AccountDep, store: StoreDep, user_id: str
) -> Response:
    sent_id = path_id(request, user_id, max_length=MAX_USER_ID_LENGTH)
    user = None
    if sent_id.storable is not None:
        user = await store.get_user(account_id=account_id, user_id=sent_id.storable)
    if user is None:
        raise UserNotFound(sent_id.shown)
    return json_response(user)


@router.delete(
    "/{user_id:any_text}",
    summary="Delete one user",
    response_class=Response,
    responses=openapi.responses("Deleted; empty body.", 404, described=_NOT_FOUND),
)
async def delete_user(
    request: Request, account_id: AccountDep, store: StoreDep, user_id: str
) -> Response:
    sent_id = path_id(request, user_id, max_length=MAX_USER_ID_LENGTH)
    deleted = sent_id.storable is not None and await store.delete_user(
        account_id=account_id, user_id=sent_id.storable
    )
    if not deleted:
        raise UserNotFound(sent_id.shown)
    return empty_response()
