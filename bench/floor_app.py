"""The framework floors (``bench/floors.py``): FastAPI routes served like crmdeals (uvicorn,
uvloop, httptools, no access log), to compare crmdeals' routes against. A trivial route, and
the upload's and the bulk delete's paths, which read the body, parse it as JSON and answer
an empty 200 as crmdeals answers an upload: the same wrk scripts drive them."""

import msgspec
from fastapi import FastAPI, Request, Response

app = FastAPI()


@app.get("/floor")
async def floor() -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


@app.post("/v3/deals")
@app.patch("/v3/deals/bulk_delete")
async def parse_body(request: Request) -> Response:
    """The body parsed (100 deals, or 100 ids), not stored."""
    msgspec.json.decode(await request.body())
    return Response()


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")
