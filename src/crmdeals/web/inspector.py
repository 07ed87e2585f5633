"""``/inspect``: an integrator signs in with an API key and reads the account's data as the
API stores it: the deals (a table of 100 a page, with filters and search, and each deal's
JSON), the users, the contacts (with their chats), the pipelines (with their stages), the
drift report (what the deals and contacts name that the account lacks), and the webhook
delivery log (each delivery's state and the body it sends). Read-only.

Where a page names users or contacts by id (a deal's responsible user, its contacts), it
shows their names, asked for once per page (``Store.names``), and the id itself for one the
account lacks: the CRM may not have sent it (yet), which is what the drift report lists.

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
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import parse_qs, urlencode

import msgspec
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from crmdeals.accounts import hash_key
from crmdeals.api.body import read_body
from crmdeals.api.deps import RateLimiterDep, SignerDep, StoreDep, count_request
from crmdeals.deals.validation import is_storable_id
from crmdeals.limits import MAX_NAME_LENGTH, MAX_USER_ID_LENGTH, PAGE_SIZE
from crmdeals.signing import ServerSigner
from crmdeals.storage import Account
from crmdeals.storage.names import Names
from crmdeals.web.pages import PageRoute, render

SESSION_COOKIE = "crmdeals_inspector"
SESSION_SECONDS = 8 * 3600
PURPOSE = "inspector-session"
_MAX_FORM_BYTES = 4096
_MAX_PAGE = 10**9
_MAX_DELIVERY_ID_DIGITS = 18
"""A delivery's id is a BIGINT: longer numbers name none (as ``/crmdeals/deliveries/{id}``)."""
_STATUSES = {"": None, "open": False, "closed": True}

router = APIRouter(prefix="/inspect", route_class=PageRoute)
_encode = msgspec.json.Encoder().encode
T = TypeVar("T")


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


@dataclass(frozen=True)
class ListQuery:
    """The page of a list without filters (users, contacts, the drift report) at ``path``."""

    path: str
    page: int = 1

    def link(self, page: int) -> str:
        """The URL of ``page`` of this list."""
        return f"{self.path}?{urlencode({'page': page})}"


@dataclass(frozen=True)
class ListPage(Generic[T]):
    """A page of a list that the store answers whole (the users), as the paged lists are:
    ``count`` in all, ``data`` on this page."""

    count: int
    data: list[T]


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
    names = Names()
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
        names = await store.names(
            account_id=account.id,
            user_ids=[deal.responsibleUserId for deal in page.data],
            contact_ids=[contact for deal in page.data for contact in deal.contacts],
        )
    return _page(
        "inspect_deals.html",
        account,
        "deals",
        status=400 if problems else 200,
        query=query,
        problems=problems,
        page=page,
        names=names,
    )


@router.get("/deal")
async def deal_detail(request: Request, account: SignedInAccount, store: StoreDep) -> Response:
    if account is None:
        return _sign_in_page(request)
    deal_id = request.query_params.get("id", "")
    deal = None
    names = Names()
    if is_storable_id(deal_id):
        deal = await store.get_deal(account_id=account.id, deal_id=deal_id)
    if deal is not None:
        names = await store.names(
            account_id=account.id, user_ids=[deal.responsibleUserId], contact_ids=deal.contacts
        )
    return _page(
        "inspect_deal.html",
        account,
        "deals",
        status=200 if deal else 404,
        deal=deal,
        deal_id=deal_id,
        names=names,
        json=_encode(deal).decode() if deal else None,
    )


@router.get("/users")
async def users_table(request: Request, account: SignedInAccount, store: StoreDep) -> Response:
    """Every user, by name then id, 100 a page. ``GET /v3/users`` answers them all at once
    (the user limit bounds them); a page of 100 keeps the table readable at 320 px."""
    if account is None:
        return _sign_in_page(request)
    query, problems = _list_query(request, "/inspect/users")
    page = None
    if not problems:
        users = await store.list_users(account_id=account.id)
        first = (query.page - 1) * PAGE_SIZE
        page = ListPage(count=len(users), data=users[first : first + PAGE_SIZE])
    return _page(
        "inspect_users.html",
        account,
        "users",
        status=400 if problems else 200,
        query=query,
        problems=problems,
        page=page,
    )


@router.get("/user")
async def user_detail(request: Request, account: SignedInAccount, store: StoreDep) -> Response:
    if account is None:
        return _sign_in_page(request)
    user_id = request.query_params.get("id", "")
    user = None
    if is_storable_id(user_id, MAX_USER_ID_LENGTH):
        user = await store.get_user(account_id=account.id, user_id=user_id)
    return _page(
        "inspect_user.html",
        account,
        "users",
        status=200 if user else 404,
        user=user,
        user_id=user_id,
        deals_link=_deals_link(user=user_id) if is_storable_id(user_id) else None,
        json=_encode(user).decode() if user else None,
    )


@router.get("/contacts")
async def contacts_table(request: Request, account: SignedInAccount, store: StoreDep) -> Response:
    """The contacts, 100 a page in id order, as ``GET /v3/contacts`` pages them."""
    if account is None:
        return _sign_in_page(request)
    query, problems = _list_query(request, "/inspect/contacts")
    page = None
    names = Names()
    if not problems:
        page = await store.list_contacts(
            account_id=account.id, offset=(query.page - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
        user_ids = [contact.responsibleUserId for contact in page.data]
        names = await store.names(account_id=account.id, user_ids=user_ids, contact_ids=[])
    return _page(
        "inspect_contacts.html",
        account,
        "contacts",
        status=400 if problems else 200,
        query=query,
        problems=problems,
        page=page,
        names=names,
    )


@router.get("/contact")
async def contact_detail(request: Request, account: SignedInAccount, store: StoreDep) -> Response:
    if account is None:
        return _sign_in_page(request)
    contact_id = request.query_params.get("id", "")
    contact = None
    names = Names()
    if is_storable_id(contact_id):
        contact = await store.get_contact(account_id=account.id, contact_id=contact_id)
    if contact is not None:
        user_ids = [contact.responsibleUserId]
        names = await store.names(account_id=account.id, user_ids=user_ids, contact_ids=[])
    return _page(
        "inspect_contact.html",
        account,
        "contacts",
        status=200 if contact else 404,
        contact=contact,
        contact_id=contact_id,
        names=names,
        deals_link=_deals_link(contact=contact_id),
        json=_encode(contact).decode() if contact else None,
    )


@router.get("/pipelines")
async def pipelines_table(request: Request, account: SignedInAccount, store: StoreDep) -> Response:
    """Every pipeline, in the order last sent, on one page: an upload holds at most 100."""
    if account is None:
        return _sign_in_page(request)
    pipelines = await store.list_pipelines(account_id=account.id)
    return _page("inspect_pipelines.html", account, "pipelines", pipelines=pipelines)


@router.get("/pipeline")
async def pipeline_detail(request: Request, account: SignedInAccount, store: StoreDep) -> Response:
    """One pipeline and its stages, in their order. There is no route for one pipeline: it
    is found in the account's list (at most 100)."""
    if account is None:
        return _sign_in_page(request)
    pipeline_id = request.query_params.get("id", "")
    pipeline = None
    if is_storable_id(pipeline_id):
        pipelines = await store.list_pipelines(account_id=account.id)
        pipeline = next((each for each in pipelines if each.id == pipeline_id), None)
    return _page(
        "inspect_pipeline.html",
        account,
        "pipelines",
        status=200 if pipeline else 404,
        pipeline=pipeline,
        pipeline_id=pipeline_id,
        json=_encode(pipeline).decode() if pipeline else None,
    )


@router.get("/drift")
async def drift_table(request: Request, account: SignedInAccount, store: StoreDep) -> Response:
    """``GET /crmdeals/drift``'s report (CRM section 4), 100 entries a page: each deal or
    contact field that names a user or contact the account lacks."""
    if account is None:
        return _sign_in_page(request)
    query, problems = _list_query(request, "/inspect/drift")
    page = None
    if not problems:
        page = await store.drift_report(
            account_id=account.id, offset=(query.page - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
    return _page(
        "inspect_drift.html",
        account,
        "drift",
        status=400 if problems else 200,
        query=query,
        problems=problems,
        page=page,
    )


@router.get("/deliveries")
async def deliveries_table(request: Request, account: SignedInAccount, store: StoreDep) -> Response:
    """``GET /crmdeals/deliveries``'s log (CRM section 6), 100 a page, newest first: what
    was sent to the CRM or is to be, and how each delivery went."""
    if account is None:
        return _sign_in_page(request)
    query, problems = _list_query(request, "/inspect/deliveries")
    page = None
    if not problems:
        page = await store.list_deliveries(
            account_id=account.id, offset=(query.page - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
    return _page(
        "inspect_deliveries.html",
        account,
        "deliveries",
        status=400 if problems else 200,
        query=query,
        problems=problems,
        page=page,
    )


@router.get("/delivery")
async def delivery_detail(request: Request, account: SignedInAccount, store: StoreDep) -> Response:
    """One delivery: its fields, and the body it sends, indented to be read (the body goes
    out on one line, as the JSON of the page's last section shows it)."""
    if account is None:
        return _sign_in_page(request)
    delivery_id = request.query_params.get("id", "")
    delivery = None
    if (
        delivery_id.isascii()
        and delivery_id.isdigit()
        and len(delivery_id) <= _MAX_DELIVERY_ID_DIGITS
    ):
        delivery = await store.get_delivery(account_id=account.id, delivery_id=int(delivery_id))
    return _page(
        "inspect_delivery.html",
        account,
        "deliveries",
        status=200 if delivery else 404,
        delivery=delivery,
        delivery_id=delivery_id,
        body=msgspec.json.format(delivery.body, indent=2).decode() if delivery else None,
        json=_encode(delivery).decode() if delivery else None,
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
    query = TableQuery(
        page=_page_number(request),
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


def _list_query(request: Request, path: str) -> tuple[ListQuery, dict[str, str]]:
    """The page of a list from the query string, and what is wrong with it."""
    page = _page_number(request)
    problems = {} if 1 <= page <= _MAX_PAGE else {"page": "Pages are numbered from 1."}
    return ListQuery(path=path, page=page), problems


def _page_number(request: Request) -> int:
    """The ``page`` parameter; 0 (no page) when it is not a number."""
    raw_page = request.query_params.get("page", "1")
    return int(raw_page) if raw_page.isascii() and raw_page.isdigit() else 0


def _deals_link(*, user: str = "", contact: str = "") -> str:
    """The deals table filtered to the deals of ``user`` or with ``contact``."""
    return TableQuery(user=user, contact=contact).link(1)


def _page(
    template: str, account: Account, section: str, *, status: int = 200, **context: Any
) -> Response:
    """An inspector page of the signed-in ``account``; ``section`` is where the header's
    navigation marks it."""
    return render(
        template,
        status=status,
        account=account,
        section=section,
        page_size=PAGE_SIZE,
        **context,
    )
