"""Users: the manager's DN and the directory photo (bytes and SHA-256).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("manager_dn", sa.String(length=1024), nullable=True))
        batch.add_column(sa.Column("photo", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("photo_sha256", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_users_manager_dn"), ["manager_dn"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_index(batch.f("ix_users_manager_dn"))
        batch.drop_column("photo_sha256")
        batch.drop_column("photo")
        batch.drop_column("manager_dn")
