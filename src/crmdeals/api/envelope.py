"""The contract's error body, and the handlers that turn every error into it."""

from collections.abc import Iterable
from typing import Any

import msgspec
from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from crmdeals.errors import ApiError, MethodNotAllowed, NotFound


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """``{"error": CODE, "description": ..., "data": ...}``; ``data`` only where it helps."""

    error: str
    description: str
    data: Any = None


_encode = msgspec.json.Encoder().encode


def encode_error(error: ApiError) -> bytes:
    """The JSON body of ``error``."""
    return _encode(ErrorBody(error=error.code, description=error.description, data=error.data))


def error_response(error: ApiError) -> Response:
    return Response(
        encode_error(error), error.status, headers=error.headers, media_type="application/json"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _routing_error)


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    request.state.error_code = error.code  # for the sandbox's request log
    return error_response(error)


async def _routing_error(request: Request, error: Exception) -> Response:
    """Starlette's own errors: an unknown route or a method the route does not have."""
    assert isinstance(error, HTTPException)
    if error.status_code == 405:
        allowed = ", ".join(sorted(_methods_of_path(request)))
        return error_response(
            MethodNotAllowed(
                f"{request.method} is not allowed here; allowed: {allowed}.",
                headers={"Allow": allowed},
            )
        )
    return error_response(NotFound(f"No route {request.method} {request.url.path}."))


def _methods_of_path(request: Request) -> set[str]:
    """Every method some route takes for this path (Starlette names only the first route's)."""
    return _methods_matching(request.app.router.routes, request.scope)


def _methods_matching(routes: Iterable[Any], scope: Scope) -> set[str]:
    methods: set[str] = set()
    for route in routes:
        # FastAPI keeps an included router as one route whose own routes are in
        # `original_router`; descend into it to reach the routes with methods.
        included = getattr(route, "original_router", None)
        if included is not None:
            methods |= _methods_matching(included.routes, scope)
        elif isinstance(route, BaseRoute) and route.matches(scope)[0] == Match.PARTIAL:
            methods |= getattr(route, "methods", None) or set()
    return methods
