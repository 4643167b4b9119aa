"""The database schema as SQLAlchemy Core tables (the single source the migrations follow).

Conventions:
- every time is epoch seconds as a float (the caller's `now`, as in the sans-IO cores), so
  SQLite and PostgreSQL store and compare them the same way and nothing depends on a
  server time zone;
- passwords are never stored: a SIP account keeps one HA1 per digest algorithm
  (RFC 7616 §3.4.2), an API token only its SHA-256;
- lists (CIDR allowlists, reports) are JSON text, so the schema needs no JSON type.

A change here needs a new revision in migrations/versions; `tests/unit/test_store_schema.py`
checks that the migrated database and these tables do not differ.
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

NAMING_CONVENTION: Final[dict[str, str]] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata: Final = sa.MetaData(naming_convention=NAMING_CONVENTION)

Time = sa.Double  # epoch seconds

users: Final = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("extension", sa.String(32), nullable=False, unique=True),
    sa.Column("display_name", sa.String(255), nullable=False, server_default=""),
    sa.Column("email", sa.String(255), nullable=True),
    sa.Column("department", sa.String(255), nullable=True),
    sa.Column("position", sa.String(255), nullable=True),
    sa.Column("phone", sa.String(64), nullable=True),
    sa.Column("mobile", sa.String(64), nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    # Directory identity: the stable id (objectGUID / entryUUID) survives renames and
    # moves; the DN is kept for display and for group membership checks.
    sa.Column("directory_id", sa.String(255), nullable=True, unique=True),
    sa.Column("directory_dn", sa.String(1024), nullable=True, unique=True),
    sa.Column("disabled_at", Time, nullable=True),  # start of the removal grace period
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    # The manager's DN as the directory gives it (AD / OpenLDAP `manager`). It is resolved
    # to a user at read time (join on directory_dn), so a manager synced later, renamed or
    # removed needs no fix-up of the people who report to them.
    sa.Column("manager_dn", sa.String(1024), nullable=True),
    # The directory photo (AD thumbnailPhoto / jpegPhoto: a JPEG, <= 100 KB in AD) and its
    # SHA-256, so a sync compares hashes and writes the bytes only when they changed.
    sa.Column("photo", sa.LargeBinary, nullable=True),
    sa.Column("photo_sha256", sa.String(64), nullable=True),
)
sa.Index(None, users.c.department)
sa.Index(None, users.c.manager_dn)

sip_accounts: Final = sa.Table(
    "sip_accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    sa.Column("username", sa.String(128), nullable=False, unique=True),
    sa.Column("realm", sa.String(255), nullable=False),
    sa.Column("ha1_md5", sa.String(32), nullable=False),
    sa.Column("ha1_sha256", sa.String(64), nullable=False),
    sa.Column("ha1_sha512_256", sa.String(64), nullable=True),  # where OpenSSL has it
    # The password itself, kept only for accounts vpbx generated (directory sync), so the
    # owner can provision a phone (API sip-credentials); None for passwords a person chose.
    sa.Column("secret", sa.String(128), nullable=True),
    sa.Column("max_calls", sa.Integer, nullable=False, server_default="4"),
    sa.Column("allowed_cidrs", sa.Text, nullable=False, server_default="[]"),  # JSON list
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)
sa.Index(None, sip_accounts.c.user_id)

roles: Final = sa.Table(
    "roles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("description", sa.String(255), nullable=False, server_default=""),
)

user_roles: Final = sa.Table(
    "user_roles",
    metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role_id", sa.Integer, sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    # "directory" (from a group, replaced by every sync) or "manual" (set in vpbx)
    sa.Column("source", sa.String(16), nullable=False, server_default="manual"),
)
sa.Index(None, user_roles.c.role_id)

numbers: Final = sa.Table(
    "numbers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("e164", sa.String(32), nullable=False, unique=True),
    sa.Column("target_kind", sa.String(16), nullable=False),  # extension | group | ivr | trunk
    sa.Column("target_value", sa.String(255), nullable=False),
    sa.Column("max_calls", sa.Integer, nullable=False, server_default="1000"),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", Time, nullable=False),
)

registrations: Final = sa.Table(
    "registrations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(128), nullable=False),  # the AOR's user part
    sa.Column("contact", sa.String(1024), nullable=False),  # Contact URI as registered
    sa.Column("received", sa.String(255), nullable=True),  # source "host:port" (RFC 3581)
    sa.Column("transport", sa.String(8), nullable=False, server_default="udp"),
    sa.Column("expires_at", Time, nullable=False),
    sa.Column("call_id", sa.String(255), nullable=False, server_default=""),
    sa.Column("cseq", sa.Integer, nullable=False, server_default="0"),
    sa.Column("user_agent", sa.String(255), nullable=True),
    sa.Column("instance_id", sa.String(255), nullable=True),  # +sip.instance (RFC 5626 §4.1)
    sa.Column("reg_id", sa.Integer, nullable=True),  # reg-id (RFC 5626 §4.2)
    sa.Column("q", sa.Double, nullable=True),
    sa.Column("updated_at", Time, nullable=False),
    sa.UniqueConstraint("username", "contact"),
)
sa.Index(None, registrations.c.expires_at)

cdrs: Final = sa.Table(
    "cdrs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("call_id", sa.String(255), nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),  # internal | inbound | outbound
    sa.Column("from_number", sa.String(255), nullable=False),
    sa.Column("to_number", sa.String(255), nullable=False),
    sa.Column("started_at", Time, nullable=False),
    sa.Column("answered_at", Time, nullable=True),
    sa.Column("ended_at", Time, nullable=True),
    # answered | no-answer | busy | failed | cancelled | rejected
    sa.Column("disposition", sa.String(16), nullable=False),
    sa.Column("hangup_cause", sa.String(64), nullable=True),  # SIP code / Reason text
    sa.Column("duration_s", sa.Double, nullable=False, server_default="0"),
    sa.Column("billsec", sa.Double, nullable=False, server_default="0"),
    sa.Column("recording_path", sa.String(1024), nullable=True),
)
sa.Index(None, cdrs.c.started_at)
sa.Index(None, cdrs.c.call_id)
sa.Index(None, cdrs.c.from_number, cdrs.c.started_at)
sa.Index(None, cdrs.c.to_number, cdrs.c.started_at)

api_tokens: Final = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("description", sa.String(255), nullable=False, server_default=""),
    # A login session's token acts for one user (their role and scope); None: a service token.
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("last_used_at", Time, nullable=True),
    sa.Column("expires_at", Time, nullable=True),  # None: until revoked
    sa.Column("revoked_at", Time, nullable=True),
)
sa.Index(None, api_tokens.c.user_id)

directory_runs: Final = sa.Table(
    "directory_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("started_at", Time, nullable=False),
    sa.Column("finished_at", Time, nullable=True),
    sa.Column("dry_run", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(16), nullable=False),  # ok | aborted | failed | running
    sa.Column("seen", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("disabled", sa.Integer, nullable=False, server_default="0"),
    sa.Column("removed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("conflicts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
    sa.Column("report", sa.Text, nullable=False, server_default="{}"),  # JSON details
)
sa.Index(None, directory_runs.c.started_at)

# Upstream SIP provider trunks, set up the way FreePBX/Asterisk trunks are. `secret` is the
# provider password in clear text: it is needed to answer the provider's digest challenges
# (an HA1 would tie it to one realm and algorithm). It is a credential: DATA_DIR/vpbx.db
# must be readable by the vpbx user only (`vpbx trunk add` makes the files 0600; a service
# unit for `vpbx serve` should run with UMask=0077 so new WAL/SHM files are private too).
trunks: Final = sa.Table(
    "trunks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("port", sa.Integer, nullable=False, server_default="5060"),
    sa.Column("transport", sa.String(8), nullable=False, server_default="udp"),  # udp | tcp
    sa.Column("username", sa.String(128), nullable=False),
    sa.Column("auth_username", sa.String(128), nullable=True),  # None: username
    sa.Column("secret", sa.String(255), nullable=False),
    sa.Column("from_user", sa.String(128), nullable=True),  # None: username
    sa.Column("from_domain", sa.String(255), nullable=True),  # None: host
    sa.Column("register", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("register_interval_s", sa.Integer, nullable=False, server_default="300"),
    sa.Column("outbound_prefixes", sa.Text, nullable=False, server_default="[]"),  # JSON list
    sa.Column("strip_digits", sa.Integer, nullable=False, server_default="0"),
    sa.Column("add_prefix", sa.String(32), nullable=False, server_default=""),
    sa.Column("caller_id", sa.String(64), nullable=True),
    sa.Column("allow_international", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("inbound_cidrs", sa.Text, nullable=False, server_default="[]"),  # JSON list
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)
