"""The sandbox's routes (``CRMDEALS_SANDBOX=1``; without it they do not exist): reset an
account, seed it, arm faults, read its request log. See ``crmdeals.sandbox``."""

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute

from crmdeals.api import openapi
from crmdeals.api.auth import current_account
from crmdeals.api.body import read_body
from crmdeals.api.routes import deals, panel
from crmdeals.errors import InvalidJson, InvalidRequest
from crmdeals.limits import MAX_ENTITIES
from crmdeals.sandbox import (
    FAULT_CODES,
    MAX_SEED,
    REQUEST_LOG_SIZE,
    FaultRequest,
    Sandbox,
    SeedRequest,
    seed_deals,
)
from crmdeals.storage import Store

AccountId = Annotated[int, Depends(current_account)]
router = APIRouter(prefix="/sandbox", tags=["sandbox"])


def faultable_operations() -> set[str]:
    """Each operation a fault can name: the contract's routes and panel links, as
    ``"METHOD /route/{template}"`` (OpenAPI's names for them)."""
    return {
        f"{method} {route.path_format}"
        for api_router in (deals.router, panel.router)
        for route in api_router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }


_encode = msgspec.json.Encoder().encode


def _json(content: object) -> Response:
    return Response(_encode(content), media_type="application/json")


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


async def _body(request: Request, type_: type[Any]) -> Any:
    body = await read_body(request, request.app.state.settings.max_body_bytes)
    try:
        return msgspec.json.decode(body or b"{}", type=type_)
    except msgspec.ValidationError as error:
        raise InvalidRequest("The body does not fit this route.", {"body": str(error)}) from None
    except msgspec.DecodeError as error:
        raise InvalidJson(f"The body is not JSON: {error}.") from None


@router.post(
    "/reset",
    summary="Forget the account's deals, armed faults and request log",
    response_class=Response,
    responses=openapi.responses("Reset; empty body."),
)
async def reset(request: Request, account_id: AccountId) -> Response:
    store: Store = request.app.state.store
    await store.delete_all_deals(account_id=account_id)
    _sandbox(request).forget(account_id)
    return Response()


@router.post(
    "/seed",
    summary=f"Add up to {MAX_SEED} made-up deals, the same ones for the same seed",
    response_class=Response,
    responses=openapi.responses(
        'Seeded: `{"count": N}`.',
        400,
        413,
        schema={
            "type": "object",
            "properties": {"count": {"type": "integer"}},
            "required": ["count"],
        },
    ),
    openapi_extra=openapi.json_body(
        {
            "type": "object",
            "properties": {
                "count": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
                "seed": {"type": "integer", "minimum": 0},
            },
            "required": ["count"],
            "additionalProperties": False,
        },
        "How many deals, and the seed that picks them (0 by default).",
    ),
)
async def seed(request: Request, account_id: AccountId) -> Response:
    wanted: SeedRequest = await _body(request, SeedRequest)
    if not 0 <= wanted.count <= MAX_SEED or wanted.seed < 0:
        raise InvalidRequest(
            "Cannot seed that.", {"count": f"from 0 to {MAX_SEED}", "seed": "0 or more"}
        )
    store: Store = request.app.state.store
    deals = seed_deals(wanted.count, wanted.seed)
    for start in range(0, len(deals), MAX_ENTITIES):
        await store.upsert_deals(account_id=account_id, deals=deals[start : start + MAX_ENTITIES])
    return _json({"count": len(deals)})


@router.post(
    "/faults",
    summary="Arm a fault for the account's next matching requests",
    response_class=Response,
    responses=openapi.responses("The armed fault, with its id.", 400, 413, schema=openapi.FAULT),
    openapi_extra=openapi.json_body(
        {
            "type": "object",
            "properties": {
                "route": {
                    "enum": [*sorted(faultable_operations()), None],
                    "description": "`POST /v3/deals`; any by default",
                },
                "status": {"type": ["integer", "null"], "enum": [*sorted(FAULT_CODES), None]},
                "retryAfter": {"type": ["integer", "null"], "minimum": 0},
                "delayMs": {"type": ["integer", "null"], "minimum": 0, "maximum": 60000},
                "times": {"type": "integer", "minimum": 1, "default": 1},
            },
            "additionalProperties": False,
            "anyOf": [
                {"required": ["status"], "properties": {"status": {"type": "integer"}}},
                {"required": ["delayMs"], "properties": {"delayMs": {"type": "integer"}}},
            ],
        },
        "The next `times` matching requests answer `status` (storing nothing), after "
        "`delayMs` if given; `status` or `delayMs` or both.",
    ),
)
async def arm_fault(request: Request, account_id: AccountId) -> Response:
    wanted: FaultRequest = await _body(request, FaultRequest)
    try:
        fault = _sandbox(request).arm(account_id, wanted)
    except ValueError as error:
        raise InvalidRequest("The fault cannot be armed.", {"body": str(error)}) from None
    return _json(fault)


@router.get(
    "/faults",
    summary="The account's armed faults",
    response_class=Response,
    responses=openapi.responses(
        "The armed faults, with the requests each will still hit.", schema=openapi.FAULT_LIST
    ),
)
async def list_faults(request: Request, account_id: AccountId) -> Response:
    return _json(_sandbox(request).faults(account_id))


@router.delete(
    "/faults",
    summary="Disarm the account's faults",
    response_class=Response,
    responses=openapi.responses("Disarmed; empty body."),
)
async def clear_faults(request: Request, account_id: AccountId) -> Response:
    _sandbox(request).clear_faults(account_id)
    return Response()


@router.get(
    "/requests",
    summary="The account's latest requests, newest first",
    response_class=Response,
    responses=openapi.responses(
        "Up to `limit` requests (100 by default).", 400, schema=openapi.LOGGED_REQUESTS
    ),
    openapi_extra={
        "parameters": [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": REQUEST_LOG_SIZE},
            }
        ]
    },
)
async def requests(request: Request, account_id: AccountId) -> Response:
    text = request.query_params.get("limit", "100")
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= REQUEST_LOG_SIZE):
        raise InvalidRequest("Bad limit.", {"limit": f"an integer from 1 to {REQUEST_LOG_SIZE}"})
    return _json(_sandbox(request).requests(account_id, int(text)))
