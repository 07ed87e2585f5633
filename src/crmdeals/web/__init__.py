"""The pages people look at, served as HTML by the server itself: the deals panel
(``/panel``, for a sales rep beside a chat), the chat window (``/chat``, which a CRM frames)
and the inspector (``/inspect``, for integrators), Jinja2 templates with autoescape, one
stylesheet, no JavaScript but the chat window's own file; and the API documentation
(``/docs``), Swagger UI served from the installed package, never a CDN."""

from fastapi import APIRouter

from crmdeals.web import chat, docs, inspector, pages, panel

router = APIRouter(include_in_schema=False)
router.include_router(pages.router)
router.include_router(panel.router)
router.include_router(chat.router)
router.include_router(inspector.router)
router.include_router(docs.router)

__all__ = ["router"]
