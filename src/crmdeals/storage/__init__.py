"""Storage: every SQL statement of crmdeals lives in this package.

- ``tables``: the schema; ``engine``: connecting and migrating (Alembic's ``migrations/``).
- ``transactions``: running one transaction (asyncpg, SQLite on the event loop or in a
  worker thread), retries of writes, the deadline, a database out of reach as a 503.
- ``dialects``: what differs between SQLite and PostgreSQL, as building blocks (a batch as
  one parameter, a list of keys, the count row's adjustment, a child table of lists), one
  set per dialect, chosen once: no query asks which database it runs on.
- One module per entity, its statements and queries: ``deals``, ``accounts``.
- ``store``: ``Store``, the front door the server and the command line call: a method per
  operation, each handing its entity's query to ``Transactions.run``.

A new entity (users, contacts, pipelines) copies ``deals``: a module with a class built
from the ``Dialect`` (its statements, built once there, from the blocks: an upsert from
``batch_rows``/``batch_parameters``, a count row through ``count_adjustment`` and
``listed_delete``, a child table through ``child_lists``), whose methods take the account
id and return a ``Work`` (a function of a connection); then one ``Store`` method per route,
a line or two each. A block that one entity needs differently on each database goes into
``dialects``, written for any per-account table.
"""

from crmdeals.storage.accounts import Account, ApiKey
from crmdeals.storage.engine import connect, connect_async, upgrade
from crmdeals.storage.store import Store

__all__ = ["Account", "ApiKey", "Store", "connect", "connect_async", "upgrade"]
