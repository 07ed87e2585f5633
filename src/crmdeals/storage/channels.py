"""The channels' statements and queries: each is a ``Work`` that ``Store`` runs in one
transaction, and takes the account id.

A replacement puts the account's whole set (CRM section 9), as pipelines do: it deletes the
account's rows and inserts the new ones, numbered by their place. The rows it deletes are
the states it compares with: a channel kept under its id with a new state is a change, and
when the account's ``channelsUpdates`` switch is on the same transaction queues one
``channelsUpdates`` delivery of every change, so a change is sent if and only if it is
stored. Two replacements of one account must not interleave (each would compare with rows
the other is replacing), so each first locks the account's row: ``FOR NO KEY UPDATE`` on
PostgreSQL, as pipelines do; on SQLite the ``DELETE`` takes the database's write lock."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import uuid4

import msgspec
import sqlalchemy as sa

from crmdeals.storage.accounts import LOCK_ACCOUNT
from crmdeals.storage.deliveries import insert_event
from crmdeals.storage.tables import channels, webhook_settings
from crmdeals.storage.transactions import Work
from crmdeals.webhooks.schemas import Channel, ChannelUpdate, NewDelivery

_ACCOUNT = channels.c.account_id == sa.bindparam("account")
_DELETE_ALL = sa.delete(channels).where(_ACCOUNT)
_DELETE_RETURNING_STATES = _DELETE_ALL.returning(channels.c.channel_id, channels.c.state)
_INSERT = sa.insert(channels)
_SWITCH = sa.select(webhook_settings.c.channels_updates).where(
    webhook_settings.c.account_id == sa.bindparam("account")
)
_LIST = (
    sa.select(
        channels.c.channel_id,
        channels.c.transport,
        channels.c.plain_id,
        channels.c.state,
        channels.c.name,
    )
    .where(_ACCOUNT)
    .order_by(channels.c.position)
)


class Channels:
    """The channel queries. Their statements are the same on every dialect (``DELETE ...
    RETURNING`` is SQLite's since 3.35 too), so this takes none."""

    def replace(
        self, account_id: int, batch: Sequence[Channel], *, now: datetime, log_size: int
    ) -> Work[list[Channel]]:
        """Make ``batch`` (one per id) the account's whole set, in its order, and queue the
        ``channelsUpdates`` of its new states (see the module); the channels stored."""
        rows = [
            {
                "account_id": account_id,
                "position": position,
                "channel_id": channel.channelId,
                "transport": channel.transport,
                "plain_id": channel.plainId,
                "state": channel.state,
                "name": channel.name,
            }
            for position, channel in enumerate(batch)
        ]
        event = str(uuid4())  # the same one should the transaction run again
        timestamp = int(now.timestamp() * 1000)

        def replace(connection: sa.Connection) -> list[Channel]:
            connection.execute(LOCK_ACCOUNT, {"account": account_id})
            deleted = connection.execute(_DELETE_RETURNING_STATES, {"account": account_id})
            stored = {row.channel_id: row.state for row in deleted}
            if rows:
                connection.execute(_INSERT, rows)
            updates = [
                ChannelUpdate(channelId=channel.channelId, state=channel.state, timestamp=timestamp)
                for channel in batch
                if stored.get(channel.channelId, channel.state) != channel.state
            ]
            if updates and connection.execute(_SWITCH, {"account": account_id}).scalar():
                body = msgspec.json.encode({"channelsUpdates": updates})
                delivery = NewDelivery(kind="channelsUpdates", body=body)
                insert_event(connection, account_id, event, [delivery], now=now, log_size=log_size)
            return list(batch)

        return replace

    def list(self, account_id: int) -> Work[list[Channel]]:
        """The account's channels, in the order they were last put."""

        def list_(connection: sa.Connection) -> list[Channel]:
            return [_channel(row) for row in connection.execute(_LIST, {"account": account_id})]

        return list_

    def delete_all(self, account_id: int) -> Work[None]:
        """Delete every channel of the account, sending nothing (the sandbox's reset)."""

        def delete_all(connection: sa.Connection) -> None:
            connection.execute(_DELETE_ALL, {"account": account_id})

        return delete_all


def _channel(row: sa.Row[Any, *tuple[Any, ...]]) -> Channel:
    return Channel(
        channelId=row.channel_id,
        transport=row.transport,
        plainId=row.plain_id,
        state=row.state,
        name=row.name,
    )
