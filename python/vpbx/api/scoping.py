"""Data scoping as query conditions (pure: builds SQLAlchemy expressions, runs nothing).

A caller's scope (rbac.scope_of) becomes a WHERE clause, so rows outside it are never
read: listing, counting, filtering and look-ups by id all go through these.

A call belongs to a user when the user's extension or one of their SIP usernames is its
`from_number` or `to_number`; a department's calls are those of its users.
"""

from __future__ import annotations

import sqlalchemy as sa

from vpbx.store.schema import cdrs, sip_accounts, users

from .rbac import Principal, Scope

__all__ = ["cdr_condition", "party_numbers", "user_condition"]


def user_condition(principal: Principal, scope: Scope) -> sa.ColumnElement[bool]:
    """Which `users` rows the principal may read at `scope`."""
    if scope is Scope.ALL:
        return sa.true()
    if scope is Scope.DEPARTMENT and principal.department:
        return users.c.department == principal.department
    if scope is Scope.SELF and principal.user_id is not None:
        return users.c.id == principal.user_id
    return sa.false()


def party_numbers(principal: Principal, scope: Scope) -> sa.CompoundSelect[tuple[str]]:
    """The numbers (extensions and SIP usernames) of the users in scope."""
    who = user_condition(principal, scope)
    extensions = sa.select(users.c.extension).where(who)
    usernames = (
        sa.select(sip_accounts.c.username).join(users, users.c.id == sip_accounts.c.user_id).where(who)
    )
    return sa.union(extensions, usernames)


def cdr_condition(principal: Principal, scope: Scope) -> sa.ColumnElement[bool]:
    """Which `cdrs` rows the principal may read at `scope`."""
    if scope is Scope.ALL:
        return sa.true()
    if scope is Scope.NONE:
        return sa.false()
    numbers = party_numbers(principal, scope)
    return sa.or_(cdrs.c.from_number.in_(numbers), cdrs.c.to_number.in_(numbers))
