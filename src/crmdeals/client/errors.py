"""What the client raises."""

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


class InvalidDeal(DealsError):
    """A deal broke a rule of the contract, found before anything of its batch was sent."""

    def __init__(self, index: int, problems: dict[str, str]) -> None:
        details = "; ".join(f"{field}: {problem}" for field, problem in problems.items())
        super().__init__(f"deal #{index} is invalid: {details}")
        self.index = index
        self.problems = problems


class DealsConnectionError(DealsError):
    """The server could not be reached, after every retry: its ``url``, and the ``reason``
    in words."""

    def __init__(self, message: str, *, url: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason
