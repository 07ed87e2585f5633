"""Reading a request body without ever holding more than the configured limit."""

from fastapi import Request

from crmdeals.errors import PayloadTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body; ``PayloadTooLarge`` as soon as it is known to exceed ``limit`` bytes,
    from ``Content-Length`` or, for a chunked body, while it streams in."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
