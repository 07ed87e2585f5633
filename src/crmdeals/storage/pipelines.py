"""The pipelines' statements and queries: each query is a ``Work`` that ``Store`` runs in
one transaction, and takes the account id.

An upload replaces the account's whole set (CRM section 3): its transaction deletes the
account's rows and inserts the new ones, numbered by their place in the upload. Two uploads
of one account must not interleave (each would delete only the rows the other had
committed, and insert ids the other inserts too), so each first locks the account's row:
``FOR NO KEY UPDATE`` on PostgreSQL, which leaves alone the key-share locks that the other
tables' foreign keys take, so deals and the rest are written meanwhile; on SQLite the
``DELETE`` that follows takes the database's write lock, the one writer at a time."""

from typing import Any

import msgspec
import sqlalchemy as sa

from crmdeals.pipelines.schemas import Pipeline, Stage
from crmdeals.storage.accounts import LOCK_ACCOUNT
from crmdeals.storage.tables import pipelines
from crmdeals.storage.transactions import Work

_DELETE_ALL = sa.delete(pipelines).where(pipelines.c.account_id == sa.bindparam("account"))
_INSERT = sa.insert(pipelines)
_LIST = (
    sa.select(pipelines.c.id, pipelines.c.name, pipelines.c.stages)
    .where(pipelines.c.account_id == sa.bindparam("account"))
    .order_by(pipelines.c.position)
)
_encode = msgspec.json.Encoder().encode
_decode_stages = msgspec.json.Decoder(list[Stage]).decode


class Pipelines:
    """The pipeline queries. Their statements are the same on every dialect (no block of
    ``dialects`` is needed), so this takes none."""

    def replace(self, account_id: int, batch: list[Pipeline]) -> Work[None]:
        """Make ``batch`` (one per id) the account's whole set, in its order; ``[]``
        deletes them all."""
        rows = [
            {
                "account_id": account_id,
                "position": position,
                "id": pipeline.id,
                "name": pipeline.name,
                "stages": None if pipeline.stages is None else _encode(pipeline.stages).decode(),
            }
            for position, pipeline in enumerate(batch)
        ]

        def replace(connection: sa.Connection) -> None:
            connection.execute(LOCK_ACCOUNT, {"account": account_id})
            connection.execute(_DELETE_ALL, {"account": account_id})
            if rows:
                connection.execute(_INSERT, rows)

        return replace

    def list(self, account_id: int) -> Work[list[Pipeline]]:
        """The account's pipelines, in the order of the upload that sent them."""

        def list_(connection: sa.Connection) -> list[Pipeline]:
            return [_pipeline(row) for row in connection.execute(_LIST, {"account": account_id})]

        return list_

    def delete_all(self, account_id: int) -> Work[None]:
        """Delete every pipeline of the account (the sandbox's reset)."""
        return self.replace(account_id, [])


def _pipeline(row: sa.Row[Any, Any, Any]) -> Pipeline:
    stages = None if row.stages is None else _decode_stages(row.stages)
    return Pipeline(id=row.id, name=row.name, stages=stages)
