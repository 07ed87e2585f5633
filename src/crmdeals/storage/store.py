"""``Store``, the one door the server, the command line and the pages go through: each
method names what it does and hands the query (``deals``, ``accounts``) to
``transactions`` to run.

The methods the server calls per request are ``async``: each runs one transaction, on
asyncpg (PostgreSQL) or on SQLite (on the event loop when that cannot wait, else in a worker
thread), so the event loop never waits on the database. ``short`` marks the transactions of
a few rows that SQLite may run on the event loop; ``writes`` those that write (retried after
a conflict). The administration methods (for the command line) are plain functions.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from crmdeals.contacts.schemas import Contact, ContactsPage
from crmdeals.deals.schemas import Deal, DealsPage
from crmdeals.drift.schemas import DriftPage
from crmdeals.errors import DuplicatePhoneNumber, Unauthorized
from crmdeals.pipelines.schemas import Pipeline
from crmdeals.storage.accounts import Account, Accounts, ApiKey
from crmdeals.storage.channels import Channels
from crmdeals.storage.chat_windows import ChatWindows, StoredChatWindow
from crmdeals.storage.contacts import Contacts
from crmdeals.storage.deals import Deals
from crmdeals.storage.deliveries import ClaimedDelivery, Deliveries, Outcome
from crmdeals.storage.dialects import dialect_for
from crmdeals.storage.drift import DriftReport
from crmdeals.storage.names import NameLookup, Names
from crmdeals.storage.pipelines import Pipelines
from crmdeals.storage.transactions import (
    WRITE_ATTEMPTS,
    Guard,
    T,
    Transactions,
    Work,
    request_guard,
)
from crmdeals.storage.users import Users, is_phone_conflict
from crmdeals.storage.webhooks import Webhooks
from crmdeals.users.schemas import User
from crmdeals.webhooks.schemas import (
    Channel,
    DeliveriesPage,
    Delivery,
    DeliveryRef,
    NewDelivery,
    WebhookSettings,
)

KEYS_REMEMBERED = 10_000
"""The live keys a process remembers the accounts of; all forgotten when full."""


class Store:
    """The queries. ``engine`` (sync) serves the administration methods and, without
    ``async_engine``, the request methods too (SQLite). With ``async_engine`` (PostgreSQL
    through asyncpg) the request methods run on the event loop."""

    def __init__(self, engine: sa.Engine, async_engine: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.async_engine = async_engine
        dialect = dialect_for(engine)
        self._transactions = Transactions(engine, async_engine)
        self._deals = Deals(dialect)
        self._accounts = Accounts(dialect)
        self._users = Users(dialect)
        self._contacts = Contacts(dialect)
        self._pipelines = Pipelines()
        self._drift = DriftReport()
        self._names = NameLookup(dialect)
        self._webhooks = Webhooks(dialect)
        self._deliveries = Deliveries()
        self._chat_windows = ChatWindows()
        self._channels = Channels()
        self._key_accounts: dict[str, int] = {}
        """The account of each live key hash this process has met (``account_for_key``)."""

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self._transactions.dispose()

    def run_transaction(self, work: Callable[[sa.Connection], T], writes: bool = True) -> T:
        """``work`` in one transaction of the sync engine, in the calling thread."""
        return self._transactions.run_transaction(work, writes)

    # -- per request ---------------------------------------------------------------------

    async def ping(self) -> None:
        """Raise unless the database answers."""
        await self._transactions.run(
            lambda connection: connection.execute(sa.text("SELECT 1")), short=True
        )

    async def account_for_key(self, key_hash: str) -> int | None:
        """The account of a request's key, if the key exists and is not revoked.

        A key this process has met before is not looked up in a transaction of its own:
        its account comes from memory, and the request's first transaction checks, in the
        same transaction as its work, that the key is still live (a ``Guard``;
        ``Unauthorized`` if not, and nothing of the work is committed). A revoked key is so
        refused at once in every process, for the cost of one indexed read. A request that
        answers before any transaction runs the check on its own (``check_request_key``)."""
        account_id = self._key_accounts.get(key_hash)
        if account_id is not None:
            request_guard.set(Guard(self._live_key_check(key_hash)))
            return account_id
        work = self._accounts.account_id_for_key_hash(key_hash)
        account_id = await self._transactions.run(work, short=True)
        if account_id is not None:
            if len(self._key_accounts) >= KEYS_REMEMBERED:
                self._key_accounts.clear()
            self._key_accounts[key_hash] = account_id
        return account_id

    async def check_request_key(self) -> None:
        """Run the request's pending ``Guard`` (``account_for_key``) in a transaction of its
        own: ``Unauthorized`` if its key was revoked since this process met it."""
        await self._transactions.run(lambda _connection: None, short=True)

    def _live_key_check(self, key_hash: str) -> Work[None]:
        lookup = self._accounts.account_id_for_key_hash(key_hash)

        def check(connection: sa.Connection) -> None:
            if lookup(connection) is None:
                self._key_accounts.pop(key_hash, None)
                raise Unauthorized()

        return check

    async def upsert_deals(self, *, account_id: int, deals: list[Deal]) -> None:
        """Add or fully replace ``deals`` (one per id) in one transaction."""
        if not deals:
            return
        work = self._deals.upsert(account_id, deals)
        await self._transactions.run(work, writes=True, short=True)

    def upsert_transaction(
        self, account_id: int, deals: list[Deal]
    ) -> Callable[[sa.Connection], None]:
        """The transaction of ``upsert_deals``, as a function of a connection (the storage
        floor of the benchmarks runs it without a server)."""
        return self._deals.upsert(account_id, deals)

    async def list_deals(self, *, account_id: int, offset: int, limit: int) -> DealsPage:
        """Up to ``limit`` deals in id order after skipping ``offset``, and the total count
        (``Deals.page``)."""
        work = self._deals.page(account_id, offset, limit)
        return await self._transactions.run(work, snapshot=True)

    async def find_deals(
        self,
        *,
        account_id: int,
        offset: int,
        limit: int,
        contact_id: str | None = None,
        responsible_user_id: str | None = None,
        closed: bool | None = None,
        search: str | None = None,
    ) -> DealsPage:
        """Like ``list_deals``, for the deals that pass every filter given
        (``Deals.find``)."""
        work = self._deals.find(
            account_id,
            offset,
            limit,
            contact_id=contact_id,
            responsible_user_id=responsible_user_id,
            closed=closed,
            search=search,
        )
        return await self._transactions.run(work, snapshot=True)

    async def get_deal(self, *, account_id: int, deal_id: str) -> Deal | None:
        return await self._transactions.run(self._deals.get(account_id, deal_id), short=True)

    async def delete_deal(self, *, account_id: int, deal_id: str) -> bool:
        """Delete one deal; whether it existed."""
        return not await self.delete_deals(account_id=account_id, deal_ids=[deal_id])

    async def delete_deals(self, *, account_id: int, deal_ids: list[str]) -> list[str]:
        """Delete the listed deals in one transaction; the ids that did not exist, in order."""
        if not deal_ids:
            return []
        work = self._deals.delete(account_id, deal_ids)
        return await self._transactions.run(work, writes=True, short=True)

    async def delete_all_deals(self, *, account_id: int) -> None:
        """Delete every deal of the account (the sandbox's reset)."""
        await self._transactions.run(self._deals.delete_all(account_id), writes=True)

    async def server_secret(self, *, name: str, candidate: str) -> str:
        """The server's secret called ``name``; the first caller stores ``candidate`` as it,
        and every process (on every machine) reads the same value afterwards."""
        work = self._accounts.server_secret(name, candidate)
        return await self._transactions.run(work, writes=True)

    # -- pipelines -------------------------------------------------------------------------

    async def replace_pipelines(self, *, account_id: int, pipelines: list[Pipeline]) -> None:
        """Make ``pipelines`` (one per id) the account's whole set, in their order, in one
        transaction; ``[]`` deletes them all."""
        work = self._pipelines.replace(account_id, pipelines)
        await self._transactions.run(work, writes=True, short=True)

    async def list_pipelines(self, *, account_id: int) -> list[Pipeline]:
        """The account's pipelines, in the order last sent."""
        return await self._transactions.run(self._pipelines.list(account_id), short=True)

    async def delete_all_pipelines(self, *, account_id: int) -> None:
        """Delete every pipeline of the account (the sandbox's reset)."""
        work = self._pipelines.delete_all(account_id)
        await self._transactions.run(work, writes=True, short=True)

    # -- contacts --------------------------------------------------------------------------

    async def upsert_contacts(self, *, account_id: int, contacts: list[Contact]) -> None:
        """Add or fully replace ``contacts`` (one per id) and their chats in the chat index,
        in one transaction."""
        if not contacts:
            return
        work = self._contacts.upsert(account_id, contacts)
        await self._transactions.run(work, writes=True, short=True)

    async def list_contacts(self, *, account_id: int, offset: int, limit: int) -> ContactsPage:
        """Up to ``limit`` contacts in id order after skipping ``offset``, and the account's
        count (``Contacts.page``)."""
        work = self._contacts.page(account_id, offset, limit)
        return await self._transactions.run(work, snapshot=True)

    async def get_contact(self, *, account_id: int, contact_id: str) -> Contact | None:
        work = self._contacts.get(account_id, contact_id)
        return await self._transactions.run(work, short=True)

    async def contact_ids_of_chat(
        self, *, account_id: int, chat_type: str, chat_id: str
    ) -> list[str]:
        """The ids of the contacts holding the chat (``chatType`` and ``chatId``, exactly), in
        id order: a chat may belong to several contacts."""
        work = self._contacts.ids_of_chat(account_id, chat_type, chat_id)
        return await self._transactions.run(work, short=True)

    async def contacts_with_chats_of_user(
        self, *, account_id: int, user_id: str, limit: int
    ) -> list[Contact]:
        """Up to ``limit`` contacts that ``user_id`` is responsible for and that have a chat
        with a ``chatId``, in id order."""
        work = self._contacts.with_chats_of_user(account_id, user_id, limit)
        return await self._transactions.run(work)

    async def delete_contact(self, *, account_id: int, contact_id: str) -> bool:
        """Delete one contact; whether it existed."""
        return not await self.delete_contacts(account_id=account_id, contact_ids=[contact_id])

    async def delete_contacts(self, *, account_id: int, contact_ids: list[str]) -> list[str]:
        """Delete the listed contacts in one transaction; the ids that did not exist, in
        order."""
        if not contact_ids:
            return []
        work = self._contacts.delete(account_id, contact_ids)
        return await self._transactions.run(work, writes=True, short=True)

    async def delete_all_contacts(self, *, account_id: int) -> None:
        """Delete every contact of the account (the sandbox's reset)."""
        await self._transactions.run(self._contacts.delete_all(account_id), writes=True)

    # -- names (for the pages) --------------------------------------------------------------

    async def names(
        self, *, account_id: int, user_ids: Sequence[str], contact_ids: Sequence[str]
    ) -> Names:
        """The names of those of the listed users and contacts that the account holds, in
        one statement: a page asks once for every id it shows (``NameLookup``)."""
        work = self._names.names(account_id, user_ids, contact_ids)
        return await self._transactions.run(work)

    # -- drift -----------------------------------------------------------------------------

    async def drift_report(self, *, account_id: int, offset: int, limit: int) -> DriftPage:
        """Up to ``limit`` entries of the account's drift report after skipping ``offset``,
        and how many it holds (``DriftReport.page``), computed now."""
        return await self._transactions.run(self._drift.page(account_id, offset, limit))

    # -- users -----------------------------------------------------------------------------

    async def upsert_users(
        self,
        *,
        account_id: int,
        users: Sequence[User],
        indexes: Sequence[int] | None = None,
        limit: int = 0,
    ) -> None:
        """Add or fully replace ``users`` (one per id) in one transaction, unless they would
        leave two users of the account with one phone (``DuplicatePhoneNumber``, naming each
        user by its ``indexes``, where the body held it; by default its place in ``users``)
        or add users past ``limit`` (``UserLimitExceeded``; 0: none). See ``Users.upsert``.

        A violation of the one-phone index (which only a writer that skipped the account's
        count row could cause) runs the transaction again, whose check then sees that
        writer's users and answers ``DuplicatePhoneNumber`` itself."""
        if not users:
            return
        work = self._users.upsert(account_id, users, indexes or range(len(users)), limit=limit)
        for _ in range(WRITE_ATTEMPTS):
            try:
                await self._transactions.run(work, writes=True, short=True)
            except sa.exc.IntegrityError as error:
                if not is_phone_conflict(error):
                    raise
            else:
                return
        raise DuplicatePhoneNumber([])

    async def list_users(self, *, account_id: int) -> list[User]:
        """Every user of the account, by name then id (code point order)."""
        return await self._transactions.run(self._users.get_all(account_id))

    async def get_user(self, *, account_id: int, user_id: str) -> User | None:
        return await self._transactions.run(self._users.get(account_id, user_id), short=True)

    async def delete_user(self, *, account_id: int, user_id: str) -> bool:
        """Delete one user; whether it existed."""
        return not await self.delete_users(account_id=account_id, user_ids=[user_id])

    async def delete_users(self, *, account_id: int, user_ids: list[str]) -> list[str]:
        """Delete the listed users (each listed once) in one transaction; the ids that did
        not exist, in order."""
        if not user_ids:
            return []
        work = self._users.delete(account_id, user_ids)
        return await self._transactions.run(work, writes=True, short=True)

    async def delete_all_users(self, *, account_id: int) -> None:
        """Delete every user of the account (the sandbox's reset)."""
        await self._transactions.run(self._users.delete_all(account_id), writes=True)

    # -- channels ----------------------------------------------------------------------------

    async def replace_channels(
        self, *, account_id: int, channels: Sequence[Channel], now: datetime, log_size: int
    ) -> list[Channel]:
        """Make ``channels`` (one per id) the account's whole set, in their order, in one
        transaction that also queues, when the account's ``channelsUpdates`` switch is on,
        one ``channelsUpdates`` delivery of the kept channels whose state changed
        (``Channels.replace``); the channels stored."""
        work = self._channels.replace(account_id, channels, now=now, log_size=log_size)
        return await self._transactions.run(work, writes=True, short=True)

    def replace_channels_now(
        self, *, account_id: int, channels: Sequence[Channel], now: datetime, log_size: int
    ) -> list[Channel]:
        """``replace_channels`` for the command line."""
        work = self._channels.replace(account_id, channels, now=now, log_size=log_size)
        return self.run_transaction(work)

    async def list_channels(self, *, account_id: int) -> list[Channel]:
        """The account's channels, in the order they were last put."""
        return await self._transactions.run(self._channels.list(account_id), short=True)

    async def delete_all_channels(self, *, account_id: int) -> None:
        """Delete every channel of the account, sending nothing (the sandbox's reset)."""
        work = self._channels.delete_all(account_id)
        await self._transactions.run(work, writes=True, short=True)

    # -- webhook settings -------------------------------------------------------------------

    async def webhook_settings(self, *, account_id: int) -> WebhookSettings:
        """The account's address and switches (never set: none, all off)."""
        return await self._transactions.run(self._webhooks.get(account_id), short=True)

    async def save_webhook_settings(
        self, *, account_id: int, uri: str, switches: dict[str, bool]
    ) -> None:
        """Set the address and the switches given (by their ``subscriptions`` name); the
        others keep their values."""
        work = self._webhooks.save(account_id, uri, switches)
        await self._transactions.run(work, writes=True, short=True)

    async def set_crm_key(self, *, account_id: int, crm_key: str | None) -> None:
        """Set (or with ``None`` clear) the key deliveries carry as ``Bearer``."""
        work = self._webhooks.set_crm_key(account_id, crm_key)
        await self._transactions.run(work, writes=True, short=True)

    async def crm_key(self, *, account_id: int) -> str | None:
        """The key deliveries carry as ``Bearer`` (``None``: none), for the test POST; no
        answer or log line may hold it."""
        return await self._transactions.run(self._webhooks.crm_key(account_id), short=True)

    def set_crm_key_now(self, *, account_id: int, crm_key: str | None) -> None:
        """``set_crm_key`` for the command line."""
        self.run_transaction(self._webhooks.set_crm_key(account_id, crm_key))

    async def reset_webhook_settings(self, *, account_id: int) -> None:
        """Forget the address and switches, and every delivery of the account; keep the crm
        key (the sandbox's reset)."""
        reset, forget = self._webhooks.reset(account_id), self._deliveries.delete_all(account_id)

        def reset_all(connection: sa.Connection) -> None:
            reset(connection)
            forget(connection)

        await self._transactions.run(reset_all, writes=True)

    async def take_auto_user_turn(self, *, account_id: int) -> str | None:
        """The responsible user of the account's next automatic creation, in turn by id
        (``Webhooks.next_auto_user``), now recorded as taken; ``None`` without users."""
        work = self._webhooks.next_auto_user(account_id)
        return await self._transactions.run(work, writes=True, short=True)

    # -- deliveries ---------------------------------------------------------------------------

    async def add_event(
        self,
        *,
        account_id: int,
        event: str,
        deliveries: Sequence[NewDelivery],
        now: datetime,
        log_size: int,
    ) -> list[DeliveryRef]:
        """Store an event's deliveries in its order, due now, in one transaction, before
        anything is sent."""
        work = self._deliveries.add_event(account_id, event, deliveries, now=now, log_size=log_size)
        return await self._transactions.run(work, writes=True, short=True)

    async def record_finished_delivery(
        self,
        *,
        account_id: int,
        event: str,
        delivery: NewDelivery,
        outcome: Outcome,
        log_size: int,
    ) -> int:
        """Log a delivery that was attempted once, outside the outbox (the test POST)."""
        work = self._deliveries.record_finished(
            account_id, event, delivery, outcome, log_size=log_size
        )
        return await self._transactions.run(work, writes=True, short=True)

    async def claim_deliveries(
        self, *, worker: str, now: datetime, until: datetime, limit: int
    ) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` due deliveries of any account for ``worker`` until
        ``until`` (``Deliveries.claim``)."""
        work = self._deliveries.claim(worker, now=now, until=until, limit=limit)
        return await self._transactions.run(work, writes=True, short=True)

    async def finish_delivery(
        self,
        *,
        delivery: ClaimedDelivery,
        worker: str,
        outcome: Outcome,
        also: Callable[[sa.Connection], Any] | None = None,
        follower_error: str | None = None,
    ) -> bool:
        """Record an attempt; whether ``worker``'s claim still held (``Deliveries.finish``)."""
        work = self._deliveries.finish(
            delivery, worker, outcome, also=also, follower_error=follower_error
        )
        return await self._transactions.run(work, writes=True, short=True)

    def upsert_contact_work(
        self, account_id: int, contact: Contact
    ) -> Callable[[sa.Connection], None]:
        """The upload of one contact, as work for another transaction (a created contact
        stored with its delivery's outcome)."""
        return self._contacts.upsert(account_id, [contact])

    def upsert_deal_work(self, account_id: int, deal: Deal) -> Callable[[sa.Connection], None]:
        """The upload of one deal, as work for another transaction."""
        return self._deals.upsert(account_id, [deal])

    def rewrite_follower(
        self,
        connection: sa.Connection,
        delivery: ClaimedDelivery,
        rewrite: Callable[[bytes], bytes],
    ) -> None:
        """Rewrite the body of the event's next pending delivery, within the transaction."""
        self._deliveries.rewrite_follower(connection, delivery, rewrite)

    async def list_deliveries(self, *, account_id: int, offset: int, limit: int) -> DeliveriesPage:
        """The account's delivery log, newest first."""
        return await self._transactions.run(self._deliveries.page(account_id, offset, limit))

    async def get_delivery(self, *, account_id: int, delivery_id: int) -> Delivery | None:
        work = self._deliveries.get(account_id, delivery_id)
        return await self._transactions.run(work, short=True)

    async def event_settled(self, *, event: str, now: datetime) -> bool:
        """Whether none of the event's deliveries is being attempted or about to be."""
        work = self._deliveries.event_settled(event, now=now)
        return await self._transactions.run(work, short=True)

    async def pending_deliveries(self) -> int:
        """How many deliveries of every account are pending."""
        return await self._transactions.run(self._deliveries.pending_count(), short=True)

    async def next_delivery_due(self) -> datetime | None:
        """When the earliest pending delivery is due; ``None`` when none is pending."""
        return await self._transactions.run(self._deliveries.next_due(), short=True)

    # -- chat windows ----------------------------------------------------------------------

    async def open_chat_window(
        self, *, window_id: str, account_id: int, request: str, expires_at: datetime
    ) -> None:
        """Store the chat window ``window_id`` (its request, as JSON) until ``expires_at``,
        deleting the windows that have expired."""
        work = self._chat_windows.open(window_id, account_id, request, expires_at)
        await self._transactions.run(work, writes=True, short=True)

    async def chat_window(self, *, window_id: str) -> StoredChatWindow | None:
        """The chat window ``window_id`` while it has not expired; else ``None``."""
        return await self._transactions.run(self._chat_windows.get(window_id), short=True)

    # -- administration --------------------------------------------------------------------

    def create_account(self, name: str) -> Account:
        return self.run_transaction(self._accounts.create_account(name))

    def find_account(self, name: str) -> Account | None:
        return self._transactions.read(self._accounts.find_account(name))

    def list_accounts(self) -> list[Account]:
        return self._transactions.read(self._accounts.list_accounts())

    def add_key(self, *, account_id: int, key_hash: str, prefix: str) -> None:
        self.run_transaction(self._accounts.add_key(account_id, key_hash, prefix))

    def key_hash_exists(self, key_hash: str) -> bool:
        """Whether a key was ever registered (revoked or not)."""
        return self._transactions.read(self._accounts.key_hash_exists(key_hash))

    def list_keys(self) -> list[ApiKey]:
        return self._transactions.read(self._accounts.list_keys())

    def find_keys(
        self,
        *,
        prefix_start: str | None = None,
        key_hash: str | None = None,
        key_id: int | None = None,
    ) -> list[ApiKey]:
        """The keys (revoked or not) whose prefix starts with ``prefix_start``, whose hash
        is ``key_hash`` or whose id is ``key_id``: every key a user's words could mean."""
        if (prefix_start, key_hash, key_id) == (None, None, None):
            return []
        work = self._accounts.find_keys(prefix_start=prefix_start, key_hash=key_hash, key_id=key_id)
        return self._transactions.read(work)

    def revoke_key_by_id(self, key_id: int) -> bool:
        """Revoke the key with this id; whether it was live (and so is revoked now)."""
        return self.run_transaction(self._accounts.revoke_key_by_id(key_id))

    def count_live_keys(self, prefix: str) -> int:
        """How many keys that are not revoked start with ``prefix``."""
        return self._transactions.read(self._accounts.count_live_keys(prefix))

    def revoke_key(self, prefix: str) -> None:
        """Revoke the one live key with this prefix."""
        self.run_transaction(self._accounts.revoke_key(prefix))

    # -- inspector sessions (per request, each one short transaction) ----------------------

    async def start_inspector_session(
        self, *, session_id: str, key_hash: str, expires_at: datetime
    ) -> bool:
        """Record the session ``session_id`` of the live key with this hash, until
        ``expires_at``; ``False`` (nothing recorded) when no live key has that hash."""
        work = self._accounts.start_inspector_session(session_id, key_hash, expires_at)
        return await self._transactions.run(work, writes=True, short=True)

    async def inspector_session_account(self, session_id: str) -> Account | None:
        """The account of a session that was started, has not ended or expired, and whose
        key is not revoked; else ``None``."""
        work = self._accounts.inspector_session_account(session_id)
        return await self._transactions.run(work, short=True)

    async def end_inspector_session(self, session_id: str) -> None:
        """End a session: every copy of its cookie stops working."""
        work = self._accounts.end_inspector_session(session_id)
        await self._transactions.run(work, writes=True, short=True)
