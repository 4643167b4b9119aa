"""Trunks: upstream SIP providers (outbound registration, routing prefixes, caller-ID rules,
inbound source networks).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), server_default="5060", nullable=False),
        sa.Column("transport", sa.String(length=8), server_default="udp", nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("auth_username", sa.String(length=128), nullable=True),
        sa.Column("secret", sa.String(length=255), nullable=False),
        sa.Column("from_user", sa.String(length=128), nullable=True),
        sa.Column("from_domain", sa.String(length=255), nullable=True),
        sa.Column("register", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("register_interval_s", sa.Integer(), server_default="300", nullable=False),
        sa.Column("outbound_prefixes", sa.Text(), server_default="[]", nullable=False),
        sa.Column("strip_digits", sa.Integer(), server_default="0", nullable=False),
        sa.Column("add_prefix", sa.String(length=32), server_default="", nullable=False),
        sa.Column("caller_id", sa.String(length=64), nullable=True),
        sa.Column("allow_international", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("inbound_cidrs", sa.Text(), server_default="[]", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trunks")),
        sa.UniqueConstraint("name", name=op.f("uq_trunks_name")),
    )


def downgrade() -> None:
    op.drop_table("trunks")
