"""``POST`` and ``GET /v3/pipelines`` (CRM section 3): an upload replaces the account's whole
set, and the list is that set, in the order it was sent. Each route reads top to bottom as
the deals' do: account, body, validation, storage, response."""

from typing import Any

from fastapi import APIRouter, Request, Response

from crmdeals.api import openapi
from crmdeals.api.body import read_body
from crmdeals.api.deps import AccountDep, SettingsDep, StoreDep
from crmdeals.api.resource import empty_response, json_response
from crmdeals.limits import MAX_ENTITIES
from crmdeals.pipelines.validation import parse_pipeline_batch

router = APIRouter(prefix="/v3/pipelines", tags=["pipelines"])


def _upload_responses() -> dict[int | str, dict[str, Any]]:
    documented = openapi.responses("Stored; empty body.", 400, 413)
    documented[400]["description"] = (
        "The body is invalid (`TOO_MANY_ENTITIES`, `INVALID_PIPELINES_DATA`, `INVALID_JSON`, "
        "`INVALID_REQUEST`); nothing was changed."
    )
    return documented


@router.post(
    "",
    summary="Replace the account's pipelines with up to 100",
    response_class=Response,
    openapi_extra=openapi.json_body(
        openapi.PIPELINE_BATCH,
        f"Up to {MAX_ENTITIES} pipelines: the account's whole set afterwards, in this order "
        "(`[]` removes them all). The same id twice (a pipeline, or a stage within one): the "
        "last content wins, at the first one's place. All or nothing.",
    ),
    responses=_upload_responses(),
)
async def upload_pipelines(
    request: Request, account_id: AccountDep, settings: SettingsDep, store: StoreDep
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    pipelines = parse_pipeline_batch(body)
    await store.replace_pipelines(account_id=account_id, pipelines=pipelines)
    return empty_response()


@router.get(
    "",
    summary="List the account's pipelines, in the order last sent",
    response_class=Response,
    description="All of them at once (at most 100), no paging.",
    responses=openapi.responses("The account's pipelines.", schema=openapi.PIPELINE_LIST),
)
async def list_pipelines(account_id: AccountDep, store: StoreDep) -> Response:
    return json_response(await store.list_pipelines(account_id=account_id))
