"""Sandbox mode, for integrators testing against crmdeals: armed faults, a log of each
account's requests, and made-up deals.

All of it lives in the server process (sandbox mode runs one), per account.
"""

import random
from collections import defaultdict, deque

import anyio
import msgspec

from crmdeals.deals.schemas import Deal
from crmdeals.errors import ApiError

REQUEST_LOG_SIZE = 1000
"""How many of an account's latest requests the sandbox keeps."""
MAX_SEED = 10_000
"""The most deals one ``POST /sandbox/seed`` makes."""
FAULT_CODES = {
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}
"""The statuses a fault can answer with, and the error code of each."""


class FaultRequest(msgspec.Struct, forbid_unknown_fields=True):
    """What ``POST /sandbox/faults`` takes: the next ``times`` requests of the account to
    ``route`` (``"POST /v3/deals"``; any API route when absent) answer ``status`` (with
    ``Retry-After: retryAfter`` if given) and store nothing, or are slowed by ``delayMs``
    first (both may be given: slowed, then failed)."""

    route: str | None = None
    status: int | None = None
    retryAfter: int | None = None
    delayMs: int | None = None
    times: int = 1


class Fault(msgspec.Struct):
    """An armed fault, as ``GET /sandbox/faults`` lists it."""

    id: int
    route: str | None
    status: int | None
    retryAfter: int | None
    delayMs: int | None
    times: int
    """How many more requests it will hit."""


class SeedRequest(msgspec.Struct, forbid_unknown_fields=True):
    count: int
    seed: int = 0


class LoggedRequest(msgspec.Struct):
    """One request, as ``GET /sandbox/requests`` shows it."""

    time: str
    method: str
    path: str
    status: int
    durationMs: float
    deals: int | None
    """How many distinct deals (or ids, for bulk_delete) the body held, when it was valid."""
    error: str | None


class SandboxFault(ApiError):
    """The answer of a request that met an armed fault."""

    def __init__(self, status: int, retry_after: int | None) -> None:
        self.status, self.code = status, FAULT_CODES[status]
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        super().__init__("A fault armed in the sandbox (POST /sandbox/faults).", headers=headers)


class Sandbox:
    """The sandbox's state for every account of this process."""

    def __init__(self, routes: set[str]) -> None:
        self.routes = routes
        """The API routes a fault may name: ``"METHOD /path/{template}"``."""
        self._faults: defaultdict[int, list[Fault]] = defaultdict(list)
        self._log: defaultdict[int, deque[LoggedRequest]] = defaultdict(
            lambda: deque(maxlen=REQUEST_LOG_SIZE)
        )
        self._next_fault_id = 1

    # -- faults ----------------------------------------------------------------------------

    def arm(self, account_id: int, request: FaultRequest) -> Fault:
        """Arm a fault, or raise ``ValueError`` saying what is wrong with the request."""
        if request.status is None and request.delayMs is None:
            raise ValueError("give a status, a delayMs, or both")
        if request.status is not None and request.status not in FAULT_CODES:
            raise ValueError(f"status must be one of {sorted(FAULT_CODES)}")
        if request.route is not None and request.route not in self.routes:
            raise ValueError(f"route must be one of {sorted(self.routes)}")
        if request.times < 1 or (request.delayMs or 0) < 0 or (request.retryAfter or 0) < 0:
            raise ValueError("times must be at least 1; delayMs and retryAfter at least 0")
        if (request.delayMs or 0) > 60_000:
            raise ValueError("delayMs is at most 60000")
        fault = Fault(
            id=self._next_fault_id,
            route=request.route,
            status=request.status,
            retryAfter=request.retryAfter,
            delayMs=request.delayMs,
            times=request.times,
        )
        self._next_fault_id += 1
        self._faults[account_id].append(fault)
        return fault

    def faults(self, account_id: int) -> list[Fault]:
        return list(self._faults[account_id])

    def clear_faults(self, account_id: int) -> None:
        self._faults.pop(account_id, None)

    async def meet_faults(self, account_id: int, route: str) -> None:
        """Apply the first armed fault that matches ``route``: wait its delay, then raise
        its status. Called before a request does anything else."""
        for fault in self._faults[account_id]:
            if fault.route in (None, route):
                fault.times -= 1
                if fault.times == 0:
                    self._faults[account_id].remove(fault)
                if fault.delayMs:
                    await anyio.sleep(fault.delayMs / 1000)
                if fault.status is not None:
                    raise SandboxFault(fault.status, fault.retryAfter)
                return

    # -- the request log -------------------------------------------------------------------

    def log(self, account_id: int, entry: LoggedRequest) -> None:
        self._log[account_id].appendleft(entry)

    def requests(self, account_id: int, limit: int) -> list[LoggedRequest]:
        """The account's latest ``limit`` requests, newest first."""
        return list(self._log[account_id])[:limit]

    def forget(self, account_id: int) -> None:
        """Clear the account's faults and request log."""
        self.clear_faults(account_id)
        self._log.pop(account_id, None)


_COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell"]
_KINDS = ["renewal", "upsell", "new licence", "pilot", "support plan", "expansion"]


def seed_deals(count: int, seed: int) -> list[Deal]:
    """``count`` deals that look real enough (names, sales reps, 1-3 contacts, one in five
    closed, one in four without a link), the same ones for the same ``seed``."""
    chooser = random.Random(seed)  # noqa: S311 (made-up data, not secrets)
    made: list[Deal] = []
    for number in range(1, count + 1):
        company = chooser.choice(_COMPANIES)
        deal_id = f"seed-{seed}-{number:05d}"
        contacts = chooser.sample(range(1, 500), chooser.randint(1, 3))
        made.append(
            Deal(
                id=deal_id,
                responsibleUserId=f"rep-{chooser.randint(1, 8)}",
                name=f"{company} {chooser.choice(_KINDS)} {2026 + number % 3}",
                uri=None if chooser.random() < 0.25 else f"https://crm.example.com/deals/{deal_id}",
                contacts=[f"contact-{contact}" for contact in contacts],
                closed=chooser.random() < 0.2,
            )
        )
    return made
