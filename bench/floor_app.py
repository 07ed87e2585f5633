"""The framework floor: one trivial FastAPI route, served like crmdeals (uvicorn, uvloop,
httptools, no access log), to compare crmdeals' routes against."""

from fastapi import FastAPI, Response

app = FastAPI()


@app.get("/floor")
async def floor() -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")
