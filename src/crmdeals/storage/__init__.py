"""Storage: every SQL statement of crmdeals lives in this package.

``tables`` declares the schema, ``engine`` connects (and migrates, through Alembic's
``migrations/``), ``store`` holds the queries the server and the CLI call.
"""

from crmdeals.storage.engine import connect, connect_async, upgrade
from crmdeals.storage.store import Account, ApiKey, Store

__all__ = ["Account", "ApiKey", "Store", "connect", "connect_async", "upgrade"]
