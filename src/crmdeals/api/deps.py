"""The routes' dependencies, each typed once (as full-stack-fastapi-template's ``api/deps.py``):
a route that says ``store: StoreDep`` gets the server's ``Store``.

The server's objects live on the app's state, where ``create_app`` puts them; the functions
here are the only code that reads them there.

Who is calling (``AccountDep``) is one dependency, ``authorized_account``, whose four steps
run in order. Each step of FastAPI's dependency solving costs about 7 us of CPU here, and
it is paid again wherever a dependency is asked for (its value is cached per request, but
its sub-dependencies are walked anew), so the server's objects are read by calling the
getters rather than asking for them. Every dependency is ``async def``: FastAPI runs a
plain ``def`` one in a worker thread.
"""

from typing import Annotated

from fastapi import Depends, Request

from crmdeals.accounts import hash_key
from crmdeals.api.auth import api_key_from_header
from crmdeals.api.ratelimit import RateLimiter
from crmdeals.errors import Unauthorized
from crmdeals.sandbox import Sandbox
from crmdeals.settings import Settings
from crmdeals.signing import ServerSigner
from crmdeals.storage import Store
from crmdeals.webhooks.events import Events
from crmdeals.webhooks.sender import Sender


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_signer(request: Request) -> ServerSigner:
    """The server's signer; its secret is read from the database when first needed."""
    signer: ServerSigner = request.app.state.signer
    return signer


async def get_rate_limiter(request: Request) -> RateLimiter | None:
    """The rate limiter; ``None`` when the limit is off (``CRMDEALS_RATE_LIMIT=off``)."""
    limiter: RateLimiter | None = request.app.state.rate_limiter
    return limiter


async def get_sender(request: Request) -> Sender:
    """The server's one HTTP client for webhooks (the test POST)."""
    sender: Sender = request.app.state.sender
    return sender


async def get_events(request: Request) -> Events:
    """What triggers deliveries (``crmdeals.webhooks.events``)."""
    events: Events = request.app.state.events
    return events


async def get_sandbox_if_on(request: Request) -> Sandbox | None:
    """The sandbox's state; ``None`` outside sandbox mode."""
    sandbox: Sandbox | None = request.app.state.sandbox
    return sandbox


async def get_sandbox(sandbox: Annotated[Sandbox | None, Depends(get_sandbox_if_on)]) -> Sandbox:
    """The sandbox's state, for the sandbox's routes: they exist only in sandbox mode."""
    assert sandbox is not None, "the sandbox's routes are mounted only in sandbox mode"
    return sandbox


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
SignerDep = Annotated[ServerSigner, Depends(get_signer)]
RateLimiterDep = Annotated[RateLimiter | None, Depends(get_rate_limiter)]
SandboxDep = Annotated[Sandbox, Depends(get_sandbox)]
SenderDep = Annotated[Sender, Depends(get_sender)]
EventsDep = Annotated[Events, Depends(get_events)]


async def authorized_account(request: Request) -> int:
    """Who is calling, in four steps, one dependency (each ``Depends`` step costs FastAPI's
    solver about 7 us of CPU, more than any of these steps):

    1. the API key -> its account id, or none (``Store.account_for_key``);
    2. count the request against the account's limit, or without an account the client
       address's, so guessing keys is limited too -> 429;
    3. no account -> 401 (once the request has been counted: refused requests count too);
    4. sandbox mode, ``/v3`` routes: the account's armed faults (``POST /sandbox/faults``)
       -> delay, status, before the route does anything (the sandbox's own routes do not
       meet them)."""
    key = api_key_from_header(request.headers.get("authorization", ""))
    account_id = None
    if key:
        account_id = await (await get_store(request)).account_for_key(hash_key(key))
    await count_request(request, await get_rate_limiter(request), account_id)
    if account_id is None:
        raise Unauthorized()
    request.state.account_id = account_id  # for the access log and the sandbox's request log
    sandbox = await get_sandbox_if_on(request)
    if sandbox is not None:
        route = request.scope["route"].path_format
        if route.startswith("/v3/"):
            await sandbox.meet_faults(account_id, f"{request.method} {route}")
    return account_id


AccountDep = Annotated[int, Depends(authorized_account)]
"""The id of the calling account: authenticated, counted, required, past its faults."""


async def count_request(
    request: Request, limiter: RateLimiter | None, account_id: int | None
) -> None:
    """Count ``request`` against the account's limit, or without an account the client
    address's (for the API and the inspector's sign-in alike); 429 past it."""
    if limiter is not None:
        client = request.client.host if request.client else "unknown"
        await limiter.hit(f"account:{account_id}" if account_id else f"address:{client}")
