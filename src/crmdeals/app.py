"""``create_app(settings)``: the ASGI application, with its routers, middleware and handlers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from crmdeals import __version__, web
from crmdeals.api.envelope import install_error_handlers
from crmdeals.api.middleware import RequestContext
from crmdeals.api.openapi import install_openapi
from crmdeals.api.ratelimit import RateLimiter
from crmdeals.api.routes import (
    contacts,
    deals,
    deliveries,
    drift,
    health,
    iframe,
    metrics,
    panel,
    pipelines,
    sandbox,
    sandbox_events,
    sandbox_webhooks,
    users,
    webhooks,
)
from crmdeals.sandbox import Sandbox
from crmdeals.settings import Settings
from crmdeals.signing import ServerSigner
from crmdeals.storage import Store, connect, connect_async
from crmdeals.webhooks.events import Events
from crmdeals.webhooks.sender import Sender
from crmdeals.webhooks.worker import DeliveryWorker


def create_app(settings: Settings | None = None) -> FastAPI:
    """The server. Its database must be migrated already (``crmdeals serve`` does that)."""
    settings = settings or Settings()
    url, pool_size, timeout = settings.database_url, settings.db_pool_size, settings.db_timeout
    store = Store(
        connect(url, pool_size=pool_size, timeout=timeout),
        connect_async(url, pool_size=pool_size, timeout=timeout),
    )

    limit = settings.parsed_rate_limit
    rate_limiter = RateLimiter(limit, settings.redis_url) if limit else None
    sender = Sender(
        allow_private=settings.sandbox or settings.webhooks_allow_private,
        timeout=settings.webhooks_timeout_seconds,
    )
    worker = DeliveryWorker(store, sender, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # No more worker threads than database connections: more would only wait for one,
        # each with memory of its own (BENCHMARKS.md, peak RSS).
        anyio.to_thread.current_default_thread_limiter().total_tokens = pool_size
        async with anyio.create_task_group() as background:
            background.start_soon(worker.run)
            yield
            background.cancel_scope.cancel()
        await sender.aclose()
        if rate_limiter is not None:
            await rate_limiter.close()
        await store.dispose()

    app = FastAPI(
        title="crmdeals",
        version=__version__,
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,  # crmdeals.web.docs serves /docs itself, without a CDN
        redoc_url=None,  # and no second viewer (see crmdeals.web.docs)
    )
    # The one home of the server's objects; crmdeals.api.deps is the only code reading it.
    app.state.settings = settings
    app.state.store = store
    app.state.rate_limiter = rate_limiter
    app.state.signer = ServerSigner(settings, store)
    app.state.sender = sender
    app.state.events = Events(store, settings, worker.wake)
    sandbox_state = Sandbox(sandbox.faultable_operations()) if settings.sandbox else None
    app.state.sandbox = sandbox_state
    app.include_router(deals.router)
    app.include_router(users.router)
    app.include_router(contacts.router)
    app.include_router(pipelines.router)
    app.include_router(webhooks.router)
    app.include_router(drift.router)
    app.include_router(panel.router)
    app.include_router(iframe.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(web.router)
    app.include_router(deliveries.router)
    if settings.sandbox:
        app.include_router(sandbox.router)
        app.include_router(sandbox_webhooks.router)
        app.include_router(sandbox_events.router)
    app.add_middleware(RequestContext, store=store, sandbox=sandbox_state)
    install_error_handlers(app)
    install_openapi(app)
    return app
