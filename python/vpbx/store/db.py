"""Opening the database: engine, SQLite pragmas, migrations to head.

    db = await Database.open("sqlite+aiosqlite:///var/lib/vpbx/vpbx.db")
    async with db.begin() as conn:
        ...
    await db.close()

SQLite (the default) runs in WAL mode so readers never wait for the writer, with foreign
keys enforced and a busy timeout so a CLI process writing at the same time as `vpbx
serve` waits briefly instead of failing. PostgreSQL (asyncpg) uses the same code path.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .errors import StoreError

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
DEFAULT_BUSY_TIMEOUT_MS: Final = 5000


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of an SQLite file (aiosqlite driver)."""
    return f"sqlite+aiosqlite:///{Path(path)}"


DATABASE_FILE: Final = "vpbx.db"


def data_dir_url(data_dir: str | Path) -> str:
    """The SQLite URL of DATA_DIR/vpbx.db, creating DATA_DIR when it is missing.
    Raises StoreError when DATA_DIR (or a parent) is a file or cannot be created."""
    path = Path(data_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise StoreError(f"data directory {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create data directory {path}: {exc.strerror or exc}") from None
    return sqlite_url(path / DATABASE_FILE)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at this package's migrations; no alembic.ini involved."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: sa.Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _check_sqlite_path(url: sa.URL) -> None:
    """A clear error for a database file whose directory is missing (SQLite would only
    say "unable to open database file")."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).expanduser().resolve()
    if not path.parent.is_dir():
        raise StoreError(f"database directory {path.parent} does not exist (database {database})")
    if path.exists() and not path.is_file():
        raise StoreError(f"database {path} is not a file")


class Database:
    """An open database: the async engine plus the knowledge of its dialect."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine: Final = engine
        self.dialect: Final[str] = engine.dialect.name

    @classmethod
    async def open(
        cls,
        url: str = "sqlite+aiosqlite:///vpbx.db",
        *,
        migrate: bool = True,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        echo: bool = False,
    ) -> Database:
        """Create the engine and (by default) bring the schema to the newest revision.
        Raises StoreError with the reason when the database cannot be opened."""
        parsed = sa.make_url(url)
        is_sqlite = parsed.get_backend_name() == "sqlite"
        if is_sqlite:
            _check_sqlite_path(parsed)
        kwargs: dict[str, Any] = {"echo": echo}
        if not is_sqlite:
            kwargs["pool_pre_ping"] = True
        engine = create_async_engine(parsed, **kwargs)
        if is_sqlite:
            _install_sqlite_pragmas(engine, busy_timeout_ms)
        db = cls(engine)
        try:
            if migrate:
                await db.migrate()
            else:
                async with engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
        except StoreError:
            await engine.dispose()
            raise
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            where = parsed.render_as_string(hide_password=True)
            raise StoreError(f"cannot open database {where}: {exc}") from exc
        return db

    async def migrate(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to `revision` (idempotent at head)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)

    async def revision(self) -> str | None:
        """The revision the database is at (None for an empty database)."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current_revision)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction, committed on success."""
        async with self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (no explicit transaction)."""
        async with self.engine.connect() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()


def _install_sqlite_pragmas(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @sa.event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; fsync at checkpoints
        finally:
            cursor.close()
