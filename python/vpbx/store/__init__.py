"""The vpbx store: SQLite by default, PostgreSQL when one machine is not enough.

SQLAlchemy 2 Core (async: aiosqlite / asyncpg), schema in `schema`, Alembic migrations
in `migrations` run by `Database.open`. Repository functions take an AsyncConnection so
callers compose them in one transaction:

    db = await Database.open(sqlite_url(data_dir / "vpbx.db"))
    async with db.begin() as conn:
        user, account = await users.create_user(conn, "1001", "pw", realm="pbx", now=now)
    async with db.connect() as conn:
        ha1 = await users.lookup_ha1(conn, "1001", "SHA-256")

Registrations go through `vpbx.io.registration_writer.RegistrationWriter` (write-behind,
batched, an asyncio task) so the SIP path
never waits on the disk.
"""

from . import cdrs, numbers, registrations, runs, tokens, users
from .cdrs import Cdr, CdrFilter
from .db import Database, alembic_config, data_dir_url, head_revision, sqlite_url
from .errors import BacklogFullError, ConflictError, StoreError
from .numbers import Number
from .registrations import Binding
from .runs import DirectoryRun
from .tokens import ApiToken
from .users import SipAccount, User

__all__ = [
    "ApiToken",
    "BacklogFullError",
    "Binding",
    "Cdr",
    "CdrFilter",
    "ConflictError",
    "Database",
    "DirectoryRun",
    "Number",
    "SipAccount",
    "StoreError",
    "User",
    "alembic_config",
    "cdrs",
    "data_dir_url",
    "head_revision",
    "numbers",
    "registrations",
    "runs",
    "sqlite_url",
    "tokens",
    "users",
]
