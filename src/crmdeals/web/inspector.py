"""``/inspect``: an integrator signs in with an API key and reads the account's deals as the
API stores them: a table (100 a page) with filters and search, and each deal's JSON.
Read-only.

The session is a cookie (HttpOnly, SameSite=Strict, Path=/inspect, Secure over HTTPS) that
holds a signed token naming the SHA-256 of the key and an expiry, never the key itself.
Every request checks the token and looks the key up again, so a revoked key ends its
sessions at once. The two forms (sign in, sign out) are POSTs that must come from this
server's own pages: SameSite=Strict, and their ``Origin`` must be this server's.
"""

import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

import msgspec
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from crmdeals.accounts import hash_key
from crmdeals.api.body import read_body
from crmdeals.api.ratelimit import RateLimiter
from crmdeals.deals.validation import is_storable_id
from crmdeals.limits import MAX_NAME_LENGTH, PAGE_SIZE
from crmdeals.signing import ServerSigner
from crmdeals.storage import Store
from crmdeals.web.pages import PageRoute, render

SESSION_COOKIE = "crmdeals_inspector"
SESSION_SECONDS = 8 * 3600
PURPOSE = "inspector-session"
_MAX_FORM_BYTES = 4096
_MAX_PAGE = 10**9
_STATUSES = {"": None, "open": False, "closed": True}

router = APIRouter(prefix="/inspect", route_class=PageRoute)
_encode = msgspec.json.Encoder().encode


class InspectorSession(msgspec.Struct, forbid_unknown_fields=True):
    """What the session cookie says: signed in with the key of this hash until ``expires``."""

    key_hash: str
    expires: int


@dataclass(frozen=True)
class TableQuery:
    """The table's filters and page, as the filter form and the paging links send them."""

    page: int = 1
    contact: str = ""
    user: str = ""
    status: str = ""
    search: str = ""

    def link(self, page: int) -> str:
        """The URL of ``page`` of this table."""
        parameters = {
            "contact": self.contact,
            "user": self.user,
            "status": self.status,
            "q": self.search,
        }
        query = {name: value for name, value in parameters.items() if value}
        return "/inspect?" + urlencode({**query, "page": page})


@router.get("")
async def deals_table(request: Request) -> Response:
    account_id = await _signed_in_account(request)
    if account_id is None:
        return _sign_in_page(request)
    query, problems = _table_query(request)
    store = _store(request)
    page = None
    if not problems:
        page = await store.find_deals(
            account_id=account_id,
            offset=(query.page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
            contact_id=query.contact or None,
            responsible_user_id=query.user or None,
            closed=_STATUSES[query.status],
            search=query.search or None,
        )
    status = 400 if problems else 200
    return render(
        "inspect_deals.html",
        status=status,
        query=query,
        problems=problems,
        page=page,
        page_size=PAGE_SIZE,
        account_id=account_id,
    )


@router.get("/deal")
async def deal_detail(request: Request) -> Response:
    account_id = await _signed_in_account(request)
    if account_id is None:
        return _sign_in_page(request)
    deal_id = request.query_params.get("id", "")
    deal = None
    if is_storable_id(deal_id):
        deal = await _store(request).get_deal(account_id=account_id, deal_id=deal_id)
    return render(
        "inspect_deal.html",
        status=200 if deal else 404,
        deal=deal,
        deal_id=deal_id,
        json=_encode(deal).decode() if deal else None,
        account_id=account_id,
    )


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    if not _from_this_server(request):
        return _refused()
    await _count_request(request, None)
    form = await _form(request)
    key = form.get("key", "").strip()
    key_hash = hash_key(key)
    if await _store(request).account_id_for_key_hash(key_hash) is None:
        return _sign_in_page(request, status=401, error="That API key is not valid.")
    signer = await _server_signer(request).get()
    session = InspectorSession(key_hash=key_hash, expires=int(time.time()) + SESSION_SECONDS)
    response = RedirectResponse("/inspect", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signer.sign(PURPOSE, session),
        max_age=SESSION_SECONDS,
        path="/inspect",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    if not _from_this_server(request):
        return _refused()
    response = RedirectResponse("/inspect", status_code=303)
    _forget_session(response, request)
    return response


async def _signed_in_account(request: Request) -> int | None:
    """The account of the session cookie, if it is valid and its key is still live (the
    request then counts against the account's rate limit)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token is None:
        return None
    session = (await _server_signer(request).get()).verify(PURPOSE, token, InspectorSession)
    if session is None or session.expires <= time.time():
        return None
    account_id = await _store(request).account_id_for_key_hash(session.key_hash)
    if account_id is not None:
        request.state.account_id = account_id  # for the access log
        await _count_request(request, account_id)
    return account_id


async def _count_request(request: Request, account_id: int | None) -> None:
    """Count the request against the rate limit as the API would: the account's, or the
    client address's (sign-in attempts)."""
    limiter: RateLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        client = request.client.host if request.client else "unknown"
        await limiter.hit(f"account:{account_id}" if account_id else f"address:{client}")


def _sign_in_page(request: Request, *, status: int = 200, error: str | None = None) -> Response:
    """The sign-in form; a stale session cookie (expired, or its key revoked) is dropped."""
    ended = error is None and SESSION_COOKIE in request.cookies
    response = render(
        "inspect_sign_in.html",
        status=status,
        error=error,
        notice="Your session has ended; sign in again." if ended else None,
    )
    if SESSION_COOKIE in request.cookies:
        _forget_session(response, request)
    return response


def _forget_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/inspect",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def _from_this_server(request: Request) -> bool:
    """Whether a form was sent from this server's own pages (against cross-site requests,
    beside SameSite=Strict): its ``Origin`` is this server's."""
    origin = request.headers.get("origin")
    return origin == f"{request.url.scheme}://{request.url.netloc}"


def _refused() -> Response:
    return render(
        "error.html",
        status=403,
        title="Refused",
        message="This form must be sent from the inspector's own page.",
    )


async def _form(request: Request) -> dict[str, str]:
    """The fields of a small ``application/x-www-form-urlencoded`` body (the first value of
    each)."""
    body = await read_body(request, _MAX_FORM_BYTES)
    fields = parse_qs(body.decode("ascii", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def _table_query(request: Request) -> tuple[TableQuery, dict[str, str]]:
    """The table's filters and page from the query string, and what is wrong with them."""
    params = request.query_params
    raw_page = params.get("page", "1")
    query = TableQuery(
        page=int(raw_page) if raw_page.isascii() and raw_page.isdigit() else 0,
        contact=params.get("contact", "").strip(),
        user=params.get("user", "").strip(),
        status=params.get("status", ""),
        search=params.get("q", "").strip(),
    )
    problems = {}
    if not 1 <= query.page <= _MAX_PAGE:
        problems["page"] = "Pages are numbered from 1."
    for name, value in (("contact", query.contact), ("user", query.user)):
        if value and not is_storable_id(value):
            problems[name] = "Ids have 1 to 100 characters."
    if query.status not in _STATUSES:
        problems["status"] = "Choose all, open or closed."
    if len(query.search) > MAX_NAME_LENGTH or "\x00" in query.search:
        problems["q"] = f"Search for at most {MAX_NAME_LENGTH} characters."
    return query, problems


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _server_signer(request: Request) -> ServerSigner:
    signer: ServerSigner = request.app.state.signer
    return signer
