"""The sandbox's routes (``CRMDEALS_SANDBOX=1``; without it they do not exist): reset an
account, seed it, arm faults, read its request log. See ``crmdeals.sandbox``."""

import msgspec
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from msgspec import UNSET

from crmdeals.api import openapi
from crmdeals.api.body import parse_json, read_body
from crmdeals.api.deps import AccountDep, SandboxDep, SettingsDep, StoreDep
from crmdeals.api.resource import empty_response, json_response
from crmdeals.api.routes import contacts, deals, iframe, panel, pipelines, users, webhooks
from crmdeals.errors import InvalidRequest
from crmdeals.limits import MAX_ENTITIES
from crmdeals.sandbox import (
    FAULT_CODES,
    MAX_SEED,
    MAX_SEED_CONTACTS,
    MAX_SEED_USERS,
    REQUEST_LOG_SIZE,
    FaultRequest,
    SeedAnswer,
    SeedRequest,
    made_up,
)

router = APIRouter(prefix="/sandbox", tags=["sandbox"])


def faultable_operations() -> set[str]:
    """Each operation a fault can name: the contract's routes and panel links, as
    ``"METHOD /route/{template}"`` (OpenAPI's names for them)."""
    return {
        f"{method} {route.path_format}"
        for api_router in (
            deals.router,
            users.router,
            contacts.router,
            panel.router,
            pipelines.router,
            webhooks.router,
            iframe.router,
        )
        for route in api_router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }


_seed_request = msgspec.json.Decoder(SeedRequest)
_fault_request = msgspec.json.Decoder(FaultRequest)
_MISFIT = "The body does not fit this route."


@router.post(
    "/reset",
    summary="Forget the account's deals, users, contacts, pipelines, webhook settings and "
    "deliveries (not its crm key), channels, armed faults and request log",
    response_class=Response,
    responses=openapi.responses("Reset; empty body."),
)
async def reset(account_id: AccountDep, store: StoreDep, sandbox: SandboxDep) -> Response:
    await store.delete_all_deals(account_id=account_id)
    await store.delete_all_users(account_id=account_id)
    await store.delete_all_contacts(account_id=account_id)
    await store.delete_all_pipelines(account_id=account_id)
    await store.reset_webhook_settings(account_id=account_id)
    await store.delete_all_channels(account_id=account_id)
    sandbox.forget(account_id)
    return empty_response()


@router.post(
    "/seed",
    summary=f"Add up to {MAX_SEED} made-up deals, and users and contacts they name, the same "
    "ones for the same seed",
    description="Made-up data that looks real enough, the same for the same `seed` (ids "
    "start with `seed-S-`, so that seeds do not overwrite each other). With `users`, the "
    "made-up contacts and deals name those users as responsible; with `contacts`, the deals "
    "name those contacts: seeded with both, the account's drift report is empty. Without "
    "them, deals name made-up `rep-N` and `contact-N` ids, which are then not users or "
    "contacts of the account. Users are stored first, in one transaction, and they count "
    "against the account's user limit (`USER_LIMIT_EXCEEDED`) and keep to its phones "
    "(`DUPLICATE_PHONE_NUMBER`, should a seeded user's phone belong to another user): "
    "either refusal stores nothing.",
    response_class=Response,
    responses=openapi.responses(
        'Seeded: `{"count": N}` (deals), with `users` and `contacts` when the request gave them.',
        400,
        413,
        schema={
            "type": "object",
            "properties": {
                "count": {"type": "integer"},
                "users": {"type": "integer"},
                "contacts": {"type": "integer"},
            },
            "required": ["count"],
        },
    ),
    openapi_extra=openapi.json_body(
        {
            "type": "object",
            "properties": {
                "count": {"type": "integer", "minimum": 0, "maximum": MAX_SEED},
                "seed": {"type": "integer", "minimum": 0},
                "users": {"type": "integer", "minimum": 0, "maximum": MAX_SEED_USERS},
                "contacts": {"type": "integer", "minimum": 0, "maximum": MAX_SEED_CONTACTS},
            },
            "required": ["count"],
            "additionalProperties": False,
        },
        "How many deals, users (0 by default) and contacts (0 by default), and the seed that "
        "picks them (0 by default).",
    ),
)
async def seed(
    request: Request, account_id: AccountDep, settings: SettingsDep, store: StoreDep
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    wanted = parse_json(body or b"{}", _seed_request, wrong_shape=_MISFIT)  # empty: no fields
    user_count = 0 if wanted.users is UNSET else wanted.users
    contact_count = 0 if wanted.contacts is UNSET else wanted.contacts
    if not (
        0 <= wanted.count <= MAX_SEED
        and wanted.seed >= 0
        and 0 <= user_count <= MAX_SEED_USERS
        and 0 <= contact_count <= MAX_SEED_CONTACTS
    ):
        raise InvalidRequest(
            "Cannot seed that.",
            {
                "count": f"from 0 to {MAX_SEED}",
                "seed": "0 or more",
                "users": f"from 0 to {MAX_SEED_USERS}",
                "contacts": f"from 0 to {MAX_SEED_CONTACTS}",
            },
        )
    made = made_up(wanted.count, wanted.seed, users=user_count, contacts=contact_count)
    # the users first and at once: the one step that can be refused, so a refusal stores nothing
    await store.upsert_users(account_id=account_id, users=made.users, limit=settings.user_limit)
    for start in range(0, len(made.contacts), MAX_ENTITIES):
        chunk = made.contacts[start : start + MAX_ENTITIES]
        await store.upsert_contacts(account_id=account_id, contacts=chunk)
    for start in range(0, len(made.deals), MAX_ENTITIES):
        chunk_of_deals = made.deals[start : start + MAX_ENTITIES]
        await store.upsert_deals(account_id=account_id, deals=chunk_of_deals)
    answer = SeedAnswer(count=len(made.deals), users=wanted.users, contacts=wanted.contacts)
    return json_response(answer)


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
async def arm_fault(
    request: Request, account_id: AccountDep, settings: SettingsDep, sandbox: SandboxDep
) -> Response:
    body = await read_body(request, settings.max_body_bytes)
    wanted = parse_json(body or b"{}", _fault_request, wrong_shape=_MISFIT)  # empty: no fields
    try:
        fault = sandbox.arm(account_id, wanted)
    except ValueError as error:
        raise InvalidRequest("The fault cannot be armed.", {"body": str(error)}) from None
    return json_response(fault)


@router.get(
    "/faults",
    summary="The account's armed faults",
    response_class=Response,
    responses=openapi.responses(
        "The armed faults, with the requests each will still hit.", schema=openapi.FAULT_LIST
    ),
)
async def list_faults(account_id: AccountDep, sandbox: SandboxDep) -> Response:
    return json_response(sandbox.faults(account_id))


@router.delete(
    "/faults",
    summary="Disarm the account's faults",
    response_class=Response,
    responses=openapi.responses("Disarmed; empty body."),
)
async def clear_faults(account_id: AccountDep, sandbox: SandboxDep) -> Response:
    sandbox.clear_faults(account_id)
    return empty_response()


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
async def requests(request: Request, account_id: AccountDep, sandbox: SandboxDep) -> Response:
    text = request.query_params.get("limit", "100")
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= REQUEST_LOG_SIZE):
        raise InvalidRequest("Bad limit.", {"limit": f"an integer from 1 to {REQUEST_LOG_SIZE}"})
    return json_response(sandbox.requests(account_id, int(text)))
