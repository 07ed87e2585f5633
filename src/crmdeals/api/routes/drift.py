"""``GET /crmdeals/drift?offset=N`` (CRM section 4): what the CRM forgot to send. A route of
crmdeals' own (``/crmdeals/``, a prefix the platform never uses): the API key and the rate
limit as on ``/v3``, but no sandbox fault ever reaches it (they are for the platform's
routes), and the sandbox does not log it."""

from fastapi import APIRouter, Request, Response

from crmdeals.api import openapi
from crmdeals.api.deps import AccountDep, StoreDep
from crmdeals.api.resource import json_response, page_offset
from crmdeals.limits import PAGE_SIZE

router = APIRouter(prefix="/crmdeals", tags=["crmdeals"])


@router.get(
    "/drift",
    summary="The deals and contacts that name users or contacts the account lacks",
    response_class=Response,
    description="One entry per field naming what is missing: a deal's or a contact's "
    "`responsibleUserId` that is not a user of the account, a deal's `contacts` that are not "
    "contacts of the account (`missing` in the deal's order). Pages of 100 by `entity`, `id`, "
    "`field` (code point order); `count` is the whole report's length. Computed on each "
    "request.",
    openapi_extra={"parameters": [openapi.offset_parameter("entries")]},
    responses=openapi.responses("A page of the drift report.", 400, schema=openapi.DRIFT_PAGE),
)
async def drift_report(request: Request, account_id: AccountDep, store: StoreDep) -> Response:
    offset = page_offset(request)
    page = await store.drift_report(account_id=account_id, offset=offset, limit=PAGE_SIZE)
    return json_response(page)
