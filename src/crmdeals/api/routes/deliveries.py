"""``GET /crmdeals/deliveries`` and ``/crmdeals/deliveries/{id}``: the account's webhook
delivery log (CRM section 6), newest first: what was sent or is to be sent, each
delivery's state, attempts and last answer or error. A route of crmdeals' own, like
``/crmdeals/drift``: no sandbox fault reaches it."""

from fastapi import APIRouter, Request, Response

from crmdeals.api import openapi
from crmdeals.api.deps import AccountDep, StoreDep
from crmdeals.api.resource import json_response, page_offset, path_id
from crmdeals.errors import DeliveryNotFound
from crmdeals.limits import PAGE_SIZE

router = APIRouter(prefix="/crmdeals/deliveries", tags=["crmdeals"])

_MAX_ID_DIGITS = 18


@router.get(
    "",
    summary="The account's webhook deliveries, newest first",
    response_class=Response,
    description="Pages of 100, newest first; `count` is how many the log holds: the newest "
    "`CRMDEALS_WEBHOOKS_LOG_SIZE` (1000) deliveries, and every pending one. `kind` is `test` "
    "for the test POST of `PATCH /v3/webhooks`, else the body's one key. A `createDeal` "
    "that follows a `createContact` shows `contacts: []` until the CRM has answered the "
    "`createContact`: its contact's id is put there before it is sent.",
    openapi_extra={"parameters": [openapi.offset_parameter("deliveries")]},
    responses=openapi.responses("A page of the log.", 400, schema=openapi.DELIVERIES_PAGE),
)
async def list_deliveries(request: Request, account_id: AccountDep, store: StoreDep) -> Response:
    offset = page_offset(request)
    page = await store.list_deliveries(account_id=account_id, offset=offset, limit=PAGE_SIZE)
    return json_response(page)


@router.get(
    "/{delivery_id:any_text}",
    summary="One webhook delivery",
    response_class=Response,
    responses=openapi.responses(
        "The delivery.",
        404,
        schema=openapi.DELIVERY,
        described={404: "No delivery with this id in the account's log: DELIVERY_NOT_FOUND."},
    ),
)
async def get_delivery(
    request: Request, delivery_id: str, account_id: AccountDep, store: StoreDep
) -> Response:
    wanted = path_id(request, delivery_id)
    text = wanted.storable or ""
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_ID_DIGITS):
        raise DeliveryNotFound(wanted.shown)
    delivery = await store.get_delivery(account_id=account_id, delivery_id=int(text))
    if delivery is None:
        raise DeliveryNotFound(wanted.shown)
    return json_response(delivery)
