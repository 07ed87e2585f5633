"""``/inspect``: an integrator signs in with an API key and reads the account's deals as the
API stores them: a table (100 a page) with filters and search, and each deal's JSON.
Read-only.

The session is a cookie (HttpOnly, SameSite=Strict, Path=/inspect, Secure over HTTPS) that
holds a signed token naming a session the server keeps (``inspector_sessions``) and an
expiry, never the key itself. Every request checks the token, then looks the session and its
key up again: signing out deletes the session, so a copy of the cookie taken before (a
signature alone cannot be taken back) stops working at once, and a revoked key ends its
sessions at once. The two forms (sign in, sign out) are POSTs that must come from this
server's own pages: SameSite=Strict, and their ``Origin`` must be this server's.
"""

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qs, urlencode

import msgspec
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from crmdeals.accounts import hash_key
from crmdeals.api.body import read_body
from crmdeals.api.deps import RateLimiterDep, SignerDep, StoreDep, count_request
from crmdeals.deals.validation import is_storable_id
from crmdeals.limits import MAX_NAME_LENGTH, PAGE_SIZE
from crmdeals.signing import ServerSigner
from crmdeals.storage import Account
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
    """What the session cookie says: the server's session ``session``, until ``expires``.
    (Cookies signed before sessions were kept name a key hash instead: they no longer
    decode, so they sign nobody in.)"""

    session: str
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


async def signed_in_account(
    request: Request, store: StoreDep, signer: SignerDep, limiter: RateLimiterDep
) -> Account | None:
    """The account of the session cookie, if the session is live (not signed out of, its
    key not revoked); the request then counts against the account's rate limit."""
    session = await _session(request, signer)
    if session is None:
        return None
    account = await store.inspector_session_account(session.session)
    if account is not None:
        request.state.account_id = account.id  # for the access log
        await count_request(request, limiter, account.id)
    return account


SignedInAccount = Annotated[Account | None, Depends(signed_in_account)]


@router.get("")
async def deals_table(request: Request, account: SignedInAccount, store: StoreDep) -> Response:
    if account is None:
        return _sign_in_page(request)
    query, problems = _table_query(request)
    page = None
    if not problems:
        page = await store.find_deals(
            account_id=account.id,
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
        account=account,
    )


@router.get("/deal")
async def deal_detail(request: Request, account: SignedInAccount, store: StoreDep) -> Response:
    if account is None:
        return _sign_in_page(request)
    deal_id = request.query_params.get("id", "")
    deal = None
    if is_storable_id(deal_id):
        deal = await store.get_deal(account_id=account.id, deal_id=deal_id)
    return render(
        "inspect_deal.html",
        status=200 if deal else 404,
        deal=deal,
        deal_id=deal_id,
        json=_encode(deal).decode() if deal else None,
        account=account,
    )


@router.post("/sign-in")
async def sign_in(
    request: Request, store: StoreDep, signer: SignerDep, limiter: RateLimiterDep
) -> Response:
    if not _from_this_server(request):
        return _refused()
    await count_request(request, limiter, None)  # sign-in attempts count by address
    form = await _form(request)
    key = form.get("key", "").strip()
    session = InspectorSession(
        session=secrets.token_urlsafe(32), expires=int(time.time()) + SESSION_SECONDS
    )
    started = await store.start_inspector_session(
        session_id=session.session,
        key_hash=hash_key(key),
        expires_at=datetime.fromtimestamp(session.expires, UTC),
    )
    if not started:
        return _sign_in_page(request, status=401, error="That API key is not valid.")
    response = RedirectResponse("/inspect", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        (await signer.get()).sign(PURPOSE, session),
        max_age=SESSION_SECONDS,
        path="/inspect",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request, store: StoreDep, signer: SignerDep) -> Response:
    if not _from_this_server(request):
        return _refused()
    session = await _session(request, signer)
    if session is not None:
        await store.end_inspector_session(session.session)
    response = RedirectResponse("/inspect", status_code=303)
    _forget_session(response, request)
    return response


async def _session(request: Request, signer: ServerSigner) -> InspectorSession | None:
    """What the session cookie says, if this server signed it and it has not expired."""
    token = request.cookies.get(SESSION_COOKIE)
    if token is None:
        return None
    session = (await signer.get()).verify(PURPOSE, token, InspectorSession)
    if session is None or session.expires <= time.time():
        return None
    return session


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
