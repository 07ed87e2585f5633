"""The five routes of the contract. Each reads top to bottom: account, body, validation,
storage, response.

The model for the next resources' routes (users, contacts, pipelines): the typed
dependencies come from ``api/deps.py``, what is not the deal's own from ``api/resource.py``
(the URL's id, the list's offset, the answers) and ``api/body.py`` (the body)."""

from dataclasses import dataclass

from fastapi import APIRouter, Request, Response

from crmdeals import metrics
from crmdeals.api import openapi
from crmdeals.api.body import read_body
from crmdeals.api.deps import AccountDep, SettingsDep, StoreDep
from crmdeals.api.resource import empty_response, json_response, page_offset, path_id
from crmdeals.deals.validation import is_storable_id, parse_deal_batch, parse_id_batch
from crmdeals.errors import DealNotFound, InvalidRequest
from crmdeals.limits import MAX_ENTITIES, MAX_ID_LENGTH, PAGE_SIZE

_BOOLEANS = {"true": True, "false": False}
_FILTER_ID_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_ID_LENGTH,
    "pattern": r"^[^\x00]*$",
}

router = APIRouter(prefix="/v3/deals", tags=["deals"])


@router.post(
    "",
    summary="Upload (upsert) up to 100 deals",
    response_class=Response,
    openapi_extra=openapi.json_body(
        openapi.DEAL_BATCH,
        f"Up to {MAX_ENTITIES} deals. New ids are added, known ids fully replaced; the same "
        "id twice: the last one wins. All or nothing.",
    ),
    responses=openapi.responses("Stored; empty body.", 400, 413),
)
async def upload_deals(
    request: Request, account_id: AccountDep, settings: SettingsDep, store: StoreDep
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    deals = parse_deal_batch(body)
    request.state.deals = len(deals)  # for the sandbox's request log
    await store.upsert_deals(account_id=account_id, deals=deals)
    metrics.DEALS_PER_UPLOAD.observe(len(deals))
    return empty_response()


@router.get(
    "",
    summary="List deals, 100 a page, in id order",
    response_class=Response,
    description="Without filters, every deal of the account and `count` is the account's "
    "total. The filters (crmdeals' own, not in the platform's contract) combine: only the "
    "deals that pass them all are listed, and `count` is how many pass.",
    openapi_extra={
        "parameters": [
            openapi.offset_parameter("deals"),
            {
                "name": "contactId",
                "in": "query",
                "required": False,
                "description": "Only the deals that list this contact.",
                "schema": _FILTER_ID_SCHEMA,
            },
            {
                "name": "responsibleUserId",
                "in": "query",
                "required": False,
                "description": "Only the deals this user is responsible for.",
                "schema": _FILTER_ID_SCHEMA,
            },
            {
                "name": "closed",
                "in": "query",
                "required": False,
                "description": "`true`: only closed deals; `false`: only open ones.",
                "schema": {"type": "boolean"},
            },
        ]
    },
    responses=openapi.responses("A page of deals.", 400, schema=openapi.DEALS_PAGE),
)
async def list_deals(request: Request, account_id: AccountDep, store: StoreDep) -> Response:
    offset = page_offset(request)
    filters = _filters(request)
    page = await store.find_deals(
        account_id=account_id,
        offset=offset,
        limit=PAGE_SIZE,
        contact_id=filters.contact_id,
        responsible_user_id=filters.responsible_user_id,
        closed=filters.closed,
    )
    return json_response(page)


@router.patch(
    "/bulk_delete",
    summary="Delete up to 100 deals",
    response_class=Response,
    openapi_extra=openapi.json_body(openapi.ID_BATCH, f"Up to {MAX_ENTITIES} deal ids."),
    responses=openapi.responses(
        "Deleted; the listed ids that did not exist.", 400, 413, schema=openapi.ID_LIST
    ),
)
async def bulk_delete_deals(
    request: Request, account_id: AccountDep, settings: SettingsDep, store: StoreDep
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    deal_ids = parse_id_batch(body)
    request.state.deals = len(deal_ids)  # for the sandbox's request log
    missing = await store.delete_deals(account_id=account_id, deal_ids=deal_ids)
    return json_response(missing)


@router.get(
    "/{deal_id:any_text}",
    summary="Get one deal",
    response_class=Response,
    responses=openapi.responses("The deal.", 404, schema=openapi.DEAL),
)
async def get_deal(
    request: Request, account_id: AccountDep, store: StoreDep, deal_id: str
) -> Response:
    sent_id = path_id(request, deal_id)
    deal = None
    if sent_id.storable is not None:
        deal = await store.get_deal(account_id=account_id, deal_id=sent_id.storable)
    if deal is None:
        raise DealNotFound(sent_id.shown)
    return json_response(deal)


@router.delete(
    "/{deal_id:any_text}",
    summary="Delete one deal",
    response_class=Response,
    responses=openapi.responses("Deleted; empty body.", 404),
)
async def delete_deal(
    request: Request, account_id: AccountDep, store: StoreDep, deal_id: str
) -> Response:
    sent_id = path_id(request, deal_id)
    deleted = sent_id.storable is not None and await store.delete_deal(
        account_id=account_id, deal_id=sent_id.storable
    )
    if not deleted:
        raise DealNotFound(sent_id.shown)
    return empty_response()


@dataclass(frozen=True)
class ListFilters:
    """The filters of ``GET /v3/deals``; ``None`` where not given."""

    contact_id: str | None = None
    responsible_user_id: str | None = None
    closed: bool | None = None


def _filters(request: Request) -> ListFilters:
    """The list's filters; ``InvalidRequest`` naming each one given wrongly."""
    problems: dict[str, str] = {}
    ids: dict[str, str | None] = {}
    for name in ("contactId", "responsibleUserId"):
        values = request.query_params.getlist(name)
        ids[name] = values[0] if values else None
        if values and (len(values) > 1 or not is_storable_id(values[0])):
            problems[name] = f"Expected one id of 1 to {MAX_ID_LENGTH} characters"
    closed_values = request.query_params.getlist("closed")
    if closed_values and (len(closed_values) > 1 or closed_values[0] not in _BOOLEANS):
        problems["closed"] = "Expected one of `true`, `false`"
    if problems:
        raise InvalidRequest("The list's filters are invalid.", problems)
    return ListFilters(
        contact_id=ids["contactId"],
        responsible_user_id=ids["responsibleUserId"],
        closed=_BOOLEANS[closed_values[0]] if closed_values else None,
    )
