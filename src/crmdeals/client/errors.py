"""What the client raises.

DealsError                 anything the client raises
 ├── DealsApiError         the server refused a request (or kept failing it)
 ├── DealsConnectionError  the server could not be reached
 └── InvalidItem           an item broke a rule before its request was sent
      ├── InvalidDeal
      ├── InvalidUser
      ├── InvalidContact
      └── InvalidPipeline
"""

from typing import Any

import httpx


class DealsError(Exception):
    """Anything the client raises."""


class DealsApiError(DealsError):
    """The server refused a request, or kept failing it after every retry: the contract's
    ``error`` code, ``description`` and ``data``, and the HTTP ``status``."""

    def __init__(self, status: int, error: str, description: str, data: Any = None) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.data = data

    @classmethod
    def from_response(cls, response: httpx.Response) -> "DealsApiError":
        try:
            body = response.json()
            return cls(response.status_code, body["error"], body["description"], body.get("data"))
        except (ValueError, KeyError, TypeError):  # not the contract's envelope (a proxy?)
            return cls(response.status_code, "HTTP_ERROR", response.text[:200] or "no body")


class InvalidItem(DealsError):
    """An item broke a rule of the contract, found before anything of its request was
    sent: its ``index`` in what was given, and its ``problems`` by field path (the server's
    own words, as ``INVALID_<ENTITY>_DATA`` would list them)."""

    entity = "item"
    """What kind of item, for the message: ``deal``, ``user``, ``contact``, ``pipeline``."""

    def __init__(self, index: int, problems: dict[str, str]) -> None:
        details = "; ".join(f"{field}: {problem}" for field, problem in problems.items())
        super().__init__(f"{self.entity} #{index} is invalid: {details}")
        self.index = index
        self.problems = problems


class InvalidDeal(InvalidItem):
    """A deal broke a rule of the contract, found before anything of its batch was sent."""

    entity = "deal"


class InvalidUser(InvalidItem):
    """A user broke a rule of the contract, found before anything of its batch was sent."""

    entity = "user"


class InvalidContact(InvalidItem):
    """A contact broke a rule of the contract, found before anything of its batch was
    sent."""

    entity = "contact"


class InvalidPipeline(InvalidItem):
    """A pipeline broke a rule of the contract, found before the set was sent."""

    entity = "pipeline"


class DealsConnectionError(DealsError):
    """The server could not be reached, after every retry: its ``url``, and the ``reason``
    in words."""

    def __init__(self, message: str, *, url: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason
