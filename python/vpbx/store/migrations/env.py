"""Alembic environment: always run with a connection handed over by `vpbx.store.db`.

`Database.open` calls `command.upgrade` inside `AsyncConnection.run_sync`, passing the
synchronous connection as `config.attributes["connection"]`; offline (SQL script) mode
uses `sqlalchemy.url` from the config.
"""

from __future__ import annotations

from alembic import context

from vpbx.store.schema import metadata

config = context.config


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("vpbx.store migrations run through vpbx.store.db.Database.open / migrate")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite ALTER TABLE needs batch mode
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
