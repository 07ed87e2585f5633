"""``/docs``: Swagger UI for the OpenAPI document, served entirely by this server.

FastAPI's own ``/docs`` loads Swagger UI from a CDN, so it is a blank page wherever the
server has no internet (a sandbox on a laptop offline, an operator's private network) and
it asks a third party for code that then runs next to the API key typed into "Authorize".
Here the page, its stylesheet and its scripts all come from this server: Swagger UI 5 (which
renders the OpenAPI 3.1 that FastAPI writes; 4.x cannot) as the ``fastapi-offline`` package
ships it, and a few lines of our own that start it (``static/docs.js``), so the page's
Content-Security-Policy allows scripts from this server only, with no inline script.

There is no ``/redoc``: a second viewer of the same document would need styles injected
inline and workers from ``blob:`` URLs (a looser policy), for nothing Swagger UI lacks.
"""

from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from fastapi import APIRouter, Request, Response

from crmdeals.web.pages import PageRoute, render

DOCS_PATH = "/docs"
SWAGGER_UI_PATH = "/static/swagger-ui"
DOCS_SCRIPT_PATH = "/static/docs.js"
_SWAGGER_UI = files("fastapi_offline").joinpath("static")
ASSETS: dict[str, tuple[Traversable, str]] = {
    f"{SWAGGER_UI_PATH}/swagger-ui-bundle.js": (
        _SWAGGER_UI.joinpath("swagger-ui-bundle.js"),
        "text/javascript",
    ),
    f"{SWAGGER_UI_PATH}/swagger-ui.css": (_SWAGGER_UI.joinpath("swagger-ui.css"), "text/css"),
    f"{SWAGGER_UI_PATH}/favicon.png": (_SWAGGER_UI.joinpath("favicon.png"), "image/png"),
    DOCS_SCRIPT_PATH: (Path(__file__).parent / "static" / "docs.js", "text/javascript"),
}
"""What the page loads: URL path -> (the file, its media type)."""


def content_security_policy() -> str:
    """The docs page's policy: scripts, styles and the document from this server only.
    ``img-src data:`` is for the icons that Swagger UI's stylesheet holds as ``data:``
    URLs; ``connect-src 'self'`` for the document and "Try it out"."""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


@cache
def _read(path: str) -> bytes:
    """A file of the page, read once, when first asked for (Swagger UI is 1.7 MB, which a
    process that never serves the docs need not hold)."""
    return ASSETS[path][0].read_bytes()


router = APIRouter(route_class=PageRoute)


@router.get(DOCS_PATH)
async def docs_page(request: Request) -> Response:
    openapi_url: str = request.app.openapi_url
    return render(
        "docs.html",
        policy=content_security_policy(),
        title=request.app.title,
        openapi_url=openapi_url,
        swagger_ui=SWAGGER_UI_PATH,
        docs_script=DOCS_SCRIPT_PATH,
    )


def _add_asset_route(path: str, media_type: str) -> None:
    async def asset() -> Response:
        return Response(
            _read(path),
            media_type=media_type,
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    router.add_api_route(path, asset, methods=["GET"], name=path)


for _path, (_file, _media_type) in ASSETS.items():
    _add_asset_route(_path, _media_type)
