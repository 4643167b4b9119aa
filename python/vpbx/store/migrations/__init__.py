"""Alembic migrations of the vpbx store, run by `Database.open` (no alembic.ini needed)."""
