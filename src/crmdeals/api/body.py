"""Request bodies: read without ever holding more than the configured limit, and the bodies
that are one JSON object parsed with the same ``INVALID_JSON`` wording as uploads.

Uploads and bulk deletes (arrays) are parsed by ``crmdeals.batch``; ``parse_json`` takes its
reasons from there, so every route says "The body is not valid JSON: <reason>." alike.
"""

from typing import TypeVar

import msgspec
from fastapi import Request

from crmdeals.batch import body_text, field_problems, not_json
from crmdeals.errors import InvalidRequest, PayloadTooLarge

T = TypeVar("T")
StructT = TypeVar("StructT", bound=msgspec.Struct)

_object_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


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


def parse_json(body: bytes, decoder: msgspec.json.Decoder[T], *, wrong_shape: str) -> T:
    """``body`` read by ``decoder``. ``InvalidJson`` when it is not JSON (not UTF-8,
    malformed, nested too deeply); ``InvalidRequest(wrong_shape)`` with msgspec's reason
    when it is JSON that ``decoder`` does not take."""
    text = body_text(body)
    try:
        return decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(wrong_shape, {"body": str(exc)}) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise not_json(exc, text) from None


def parse_json_object(body: bytes, struct: type[StructT], *, invalid: str) -> StructT:
    """A body that is one JSON object, as ``struct``; ``InvalidRequest(invalid)`` naming
    every missing or invalid field (U+0000 refused in strings), as uploads name them."""
    fields = parse_json(body, _object_decoder, wrong_shape="The body must be a JSON object.")
    problems = field_problems(fields, msgspec.structs.fields(struct))
    if problems:
        raise InvalidRequest(invalid, problems)
    return msgspec.json.decode(body, type=struct)  # every field is valid
