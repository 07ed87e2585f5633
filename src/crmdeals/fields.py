"""The field types that every entity's schemas share: ids, names, links and phones, the
words that explain their patterns, and the normal form of an id.

One rule has one definition whatever the entity: an id is a string or a 64-bit integer, a
link an absolute http(s) URL, a phone 8-15 ASCII digits. Only the lengths differ, and those
come from ``crmdeals.limits``.
"""

import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from msgspec import Meta

from crmdeals.limits import (
    MAX_ENTITIES,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PHONE_DIGITS,
    MAX_URI_LENGTH,
    MIN_PHONE_DIGITS,
)

HTTP_URL_PATTERN = (
    r'^[hH][tT][tT][pP][sS]?://[^\x00-\x20\x7f/?#\\"<>`]+'
    r'([/?#][^\x00-\x20\x7f\\"<>`]*)?(?![\s\S])'
)
r"""An absolute http(s) URL with a host and no spaces or control characters: nothing a
browser could run as script. Nor the characters no URL may hold unencoded that end an HTML
attribute or tag (``"``, ``<``, ``>``, a backtick) or that browsers read as ``/`` (``\``),
so a page that forgets to escape it still cannot be broken out of or sent elsewhere.
It ends in ``(?![\s\S])`` (the end of the string) rather than ``$``, which in Python also
matches before a final newline; both Python and JSON Schema's ECMAScript regexes read it the
same way."""

PHONE_PATTERN = rf"^[0-9]{{{MIN_PHONE_DIGITS},{MAX_PHONE_DIGITS}}}(?![\s\S])"
"""A phone as the platform writes it: ASCII digits only, no ``+``, spaces or dashes."""

NO_LEADING_AT_PATTERN = r"^[^@]"
"""A handle without its ``@``: the platform stores ``anna``, never ``@anna``."""

PATTERN_REASONS = {
    HTTP_URL_PATTERN: "Expected an absolute `http://` or `https://` URL",
    PHONE_PATTERN: f"Expected {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} ASCII digits, "
    "without `+`, spaces or dashes",
    NO_LEADING_AT_PATTERN: "Expected no leading `@`",
}
"""What each pattern means, in words: msgspec's own message would show the regex."""

IdText = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
IdInteger = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
IdInput = IdText | IdInteger
"""An id as a client may send it: a string of 1-100 characters, or a 64-bit integer that is
normalised to its decimal string (so ``1`` and ``"1"`` are the same id). Larger integers
are refused: most JSON clients cannot hold them exactly, so they should be sent as strings."""

Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
Uri = Annotated[str, Meta(max_length=MAX_URI_LENGTH, pattern=HTTP_URL_PATTERN)]
Phone = Annotated[str, Meta(pattern=PHONE_PATTERN)]

_PHONE = re.compile(PHONE_PATTERN)


def batch_of(item_type: Any) -> Any:
    """The type of an upload or bulk_delete body: an array of at most ``MAX_ENTITIES``."""
    return Annotated[list[item_type], Meta(max_length=MAX_ENTITIES)]


id_text: Callable[[str | int], str] = str
"""An id in its normal form: an integer as its decimal string, a string as it is. ``str``
does both for what msgspec decodes (exact ``str`` and ``int``, never ``bool``), without a
Python call per id: a fast path's 100 deals hold up to 1,200 ids."""


def unique_ids(values: Iterable[str | int]) -> list[str]:
    """Ids in their normal form, each once, in first occurrence order."""
    return list(dict.fromkeys(map(str, values)))


def is_phone(text: str) -> bool:
    """Whether ``text`` is a phone as ``PHONE_PATTERN`` says."""
    return _PHONE.match(text) is not None


def is_storable_id(value: str, max_length: int = MAX_ID_LENGTH) -> bool:
    """Whether an id taken from a URL path could belong to a stored entity."""
    return 0 < len(value) <= max_length and "\x00" not in value
