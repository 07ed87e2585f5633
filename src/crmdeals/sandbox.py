"""Sandbox mode, for integrators testing against crmdeals: armed faults, a log of each
account's requests, and made-up deals, users and contacts.

All of it lives in the server process (sandbox mode runs one), per account.
"""

import random
from collections import defaultdict, deque
from collections.abc import Sequence

import anyio
import msgspec
from msgspec import UNSET, UnsetType

from crmdeals.contacts.schemas import ChatType, Contact, ContactData
from crmdeals.deals.schemas import Deal
from crmdeals.errors import ApiError
from crmdeals.limits import USER_LIMIT
from crmdeals.users.schemas import User

REQUEST_LOG_SIZE = 1000
"""How many of an account's latest requests the sandbox keeps."""
MAX_SEED = 10_000
"""The most deals one ``POST /sandbox/seed`` makes."""
MAX_SEED_USERS = USER_LIMIT
"""The most users one seed makes: an account's default user limit (the server's own limit
still applies: a seed past it is refused)."""
MAX_SEED_CONTACTS = MAX_SEED
"""The most contacts one seed makes."""
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
    """What ``POST /sandbox/seed`` takes: how many deals (``count``), users and contacts to
    make up, and the seed that picks them. ``users`` and ``contacts`` are unset rather than
    0 by default so that the answer names them only when asked: a body of ``count`` and
    ``seed`` alone gets the answer it always got."""

    count: int
    seed: int = 0
    users: int | UnsetType = UNSET
    contacts: int | UnsetType = UNSET


class SeedAnswer(msgspec.Struct):
    """What ``POST /sandbox/seed`` answers: how many deals it made, and how many users and
    contacts when the request named them."""

    count: int
    users: int | UnsetType = UNSET
    contacts: int | UnsetType = UNSET


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
_FIRST_NAMES = ["Anna", "Boris", "Chen", "Daria", "Emeka", "Farida", "Giulia", "Hiro", "Ines"]
_FIRST_NAMES += ["Jonas", "Kateryna", "Luis", "Mei", "Nikolai", "Olga", "Priya"]
_LAST_NAMES = ["Ivanova", "Smith", "Okafor", "Rossi", "Tanaka", "Garcia", "Novak", "Haddad"]
_LAST_NAMES += ["Silva", "Kowalski", "Nguyen", "Petrov"]
_CHAT_TYPES: list[ChatType] = ["whatsapp", "telegram", "instagram", "viber", "vk"]


class Seeded(msgspec.Struct):
    """What one seed makes: users, contacts naming those users, and deals naming both."""

    users: list[User]
    contacts: list[Contact]
    deals: list[Deal]


def made_up(count: int, seed: int, *, users: int = 0, contacts: int = 0) -> Seeded:
    """``users`` users, ``contacts`` contacts and ``count`` deals, the same ones for the same
    ``seed``. Each kind draws from a random stream of its own, so asking for users or
    contacts does not change which users or contacts the same seed makes otherwise.

    A contact's or deal's user is one of the made-up users when there are any, and a deal's
    contacts are made-up contacts when there are any: with both, the account's drift report
    (``GET /crmdeals/drift``) stays empty. Without them, deals name made-up ids
    (``rep-N``, ``contact-N``), as seeds always did."""
    made_users = seed_users(users, seed)
    user_ids = [user.id for user in made_users]
    made_contacts = seed_contacts(contacts, seed, user_ids=user_ids)
    contact_ids = [contact.id for contact in made_contacts]
    deals = seed_deals(count, seed, user_ids=user_ids, contact_ids=contact_ids)
    return Seeded(users=made_users, contacts=made_contacts, deals=deals)


def seed_users(count: int, seed: int) -> list[User]:
    """``count`` users (sales reps): names that repeat now and then (the list sorts by name,
    then id), and seven in ten with a phone. Phones are unique: 15 digits made of a number
    drawn from the seed and the user's number, so that two seeds' users do not collide
    (``DUPLICATE_PHONE_NUMBER``) unless their draws do, one chance in 10**10."""
    chooser = random.Random(f"users-{seed}")  # noqa: S311 (made-up data, not secrets)
    phone_prefix = chooser.randrange(10**10)
    made: list[User] = []
    for number in range(1, count + 1):
        name = f"{chooser.choice(_FIRST_NAMES)} {chooser.choice(_LAST_NAMES)}"
        phone = None if chooser.random() < 0.3 else f"7{phone_prefix:010d}{number:04d}"
        made.append(User(id=f"seed-{seed}-user-{number:04d}", name=name, phone=phone))
    return made


def seed_contacts(count: int, seed: int, *, user_ids: Sequence[str] = ()) -> list[Contact]:
    """``count`` contacts (customers), each with one or two chats of the common chat types,
    one in four without a link; their responsible users are drawn from ``user_ids`` (made-up
    ``rep-N`` ids without them)."""
    chooser = random.Random(f"contacts-{seed}")  # noqa: S311 (made-up data, not secrets)
    made: list[Contact] = []
    for number in range(1, count + 1):
        contact_id = f"seed-{seed}-contact-{number:05d}"
        first, last = chooser.choice(_FIRST_NAMES), chooser.choice(_LAST_NAMES)
        chats = [_made_up_chat(chooser, f"{first}.{last}{number}".lower())]
        if chooser.random() < 0.4:
            chats.append(_made_up_chat(chooser, f"{first}{number}".lower()))
        made.append(
            Contact(
                id=contact_id,
                responsibleUserId=(
                    chooser.choice(user_ids) if user_ids else f"rep-{chooser.randint(1, 8)}"
                ),
                name=f"{first} {last}",
                uri=(
                    None
                    if chooser.random() < 0.25
                    else f"https://crm.example.com/contacts/{contact_id}"
                ),
                contactData=list(dict.fromkeys(chats)),  # a repeated chat is kept once
            )
        )
    return made


def _made_up_chat(chooser: random.Random, handle: str) -> ContactData:
    """A chat as the contract has it for its type: a phone as the chatId of WhatsApp and
    Viber, a username (sometimes a phone too) and no chatId for Telegram, a handle without
    ``@`` for Instagram, a number for VK."""
    chat_type = chooser.choice(_CHAT_TYPES)
    phone = f"79{chooser.randrange(10**9):09d}"
    if chat_type in ("whatsapp", "viber"):
        return ContactData(chatType=chat_type, chatId=phone, username=None, phone=None)
    if chat_type == "telegram":
        with_phone = phone if chooser.random() < 0.5 else None
        return ContactData(chatType=chat_type, chatId=None, username=handle, phone=with_phone)
    if chat_type == "instagram":
        return ContactData(chatType=chat_type, chatId=handle, username=None, phone=None)
    chat_id = str(chooser.randrange(1, 10**9))
    return ContactData(chatType=chat_type, chatId=chat_id, username=None, phone=None)


def seed_deals(
    count: int,
    seed: int,
    *,
    user_ids: Sequence[str] = (),
    contact_ids: Sequence[str] = (),
) -> list[Deal]:
    """``count`` deals that look real enough (names, sales reps, 1-3 contacts, one in five
    closed, one in four without a link), the same ones for the same ``seed``. Their sales
    reps are drawn from ``user_ids`` and their contacts from ``contact_ids`` when given;
    without them the deals are exactly the ones seeds made before users and contacts
    existed (the draws are made in the same order)."""
    chooser = random.Random(seed)  # noqa: S311 (made-up data, not secrets)
    made: list[Deal] = []
    for number in range(1, count + 1):
        company = chooser.choice(_COMPANIES)
        deal_id = f"seed-{seed}-{number:05d}"
        how_many = chooser.randint(1, 3)
        if contact_ids:
            contacts = chooser.sample(contact_ids, min(how_many, len(contact_ids)))
        else:
            contacts = [f"contact-{n}" for n in chooser.sample(range(1, 500), how_many)]
        made.append(
            Deal(
                id=deal_id,
                responsibleUserId=(
                    chooser.choice(user_ids) if user_ids else f"rep-{chooser.randint(1, 8)}"
                ),
                name=f"{company} {chooser.choice(_KINDS)} {2026 + number % 3}",
                uri=None if chooser.random() < 0.25 else f"https://crm.example.com/deals/{deal_id}",
                contacts=contacts,
                closed=chooser.random() < 0.2,
            )
        )
    return made
