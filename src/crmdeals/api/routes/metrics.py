"""``GET /metrics``: the Prometheus metrics of the server (see ``crmdeals.metrics``)."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from crmdeals import metrics

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Metrics in the Prometheus text format",
    response_class=Response,
    responses={
        200: {
            "description": "Requests by route and status, latency, deals per upload, "
            "rate-limit refusals, requests left unchecked while Redis was unreachable, "
            "database write retries.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def prometheus_metrics() -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
