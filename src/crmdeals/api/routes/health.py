"""``GET /healthz``: whether this process can reach its database."""

from fastapi import APIRouter, Response

from crmdeals.api.deps import StoreDep
from crmdeals.api.envelope import error_response
from crmdeals.errors import ServiceUnavailable

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="Health: the database answers",
    response_class=Response,
    responses={
        200: {
            "description": "Healthy.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"status": {"const": "ok"}},
                        "required": ["status"],
                    }
                }
            },
        },
        503: {"description": "The database does not answer (`SERVICE_UNAVAILABLE`)."},
    },
)
async def healthz(store: StoreDep) -> Response:
    try:
        await store.ping()
    except Exception:  # any failure to reach the database means "not healthy"
        return error_response(ServiceUnavailable("The database does not answer."))
    return Response(b'{"status":"ok"}', media_type="application/json")
