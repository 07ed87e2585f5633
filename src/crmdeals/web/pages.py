"""What every page shares: the templates, the headers, the stylesheet, the error page.

Every page gets a Content-Security-Policy that allows nothing from elsewhere (only this
server's stylesheet; no script at all, but the chat window's own file), is never cached,
and sends a ``Referer`` only to this server (the panel's URL holds its token; the
inspector's forms need an ``Origin``, which browsers blank under ``no-referrer``).
"""

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from crmdeals.errors import ApiError

_HERE = Path(__file__).parent
_STYLESHEET = (_HERE / "static" / "style.css").read_bytes()
STYLESHEET_PATH = "/static/style.css"

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def content_security_policy(frame_ancestors: str, *, scripts: bool = False) -> str:
    """The pages' policy; with ``scripts``, this server's scripts are allowed too (the chat
    window's ``chat.js``), and still no inline script."""
    script_src = "script-src 'self'; " if scripts else ""
    return (
        f"default-src 'none'; {script_src}style-src 'self'; img-src 'self'; "
        f"form-action 'self'; base-uri 'none'; frame-ancestors {frame_ancestors}"
    )


def render(
    template: str,
    *,
    status: int = 200,
    frame_ancestors: str = "'none'",
    policy: str | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    """``template`` rendered as a page that ``frame_ancestors`` may show in a frame; with
    ``policy``, a page whose Content-Security-Policy is that one (the API docs')."""
    html = templates.get_template(template).render(stylesheet=STYLESHEET_PATH, **context)
    response = Response(html, status, media_type="text/html")
    response.headers.update(
        {
            "Content-Security-Policy": policy or content_security_policy(frame_ancestors),
            "Cache-Control": "no-store",
            "Referrer-Policy": "same-origin",
            "X-Content-Type-Options": "nosniff",
            **(headers or {}),
        }
    )
    return response


class PageRoute(APIRoute):
    """A page: an ``ApiError`` met on the way (the database is unavailable, too many
    requests) is shown as an HTML page with its status and headers, not as JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as error:
                request.state.error_code = error.code
                return render(
                    "error.html",
                    status=error.status,
                    headers=error.headers,
                    title="Something is in the way",
                    message=error.description,
                )

        return page_handler


router = APIRouter(route_class=PageRoute)


@router.get(STYLESHEET_PATH)
async def stylesheet() -> Response:
    return Response(
        _STYLESHEET,
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
