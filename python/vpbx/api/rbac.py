"""Who may do what: the one RBAC table of vpbx, and the pure checks built on it.

Every API route declares a `Need` (an exact permission, or a resource read in any
scope); `check` decides it for a `Principal`, and `scope_of` tells the query how far the
caller's data reaches (own / department / all), so scoping happens in the query.

The matrix (issue 5, roles as the seed product defines them):

=================================  ========  =========  ========  ==========  =====
permission                         employee  team_lead  marketer  accountant  admin
=================================  ========  =========  ========  ==========  =====
users:read:self                    x                                          x
users:read:department                        x                                x
users:read:all                                                                x
users:read:contact-fields                    x                                x
users:read:roles                                                              x
sip-credentials:self               x                                          x
sip-credentials:all                                                           x
calls:read:self                    x                                          x
calls:read:department                        x                                x
calls:read:all                                          x                     x
recordings:read:self               x                                          x
recordings:read:department                   x                                x
recordings:read:all                                                           x
analytics:read:department                    x                                x
analytics:read:all                                      x                     x
call-tracking:read                                      x                     x
distribution:write:department                x                                x
billing:read                                                      x           x
directory:sync                                                                x
directory:runs                                                                x
tokens:manage                                                                 x
settings:write                                                                x
=================================  ========  =========  ========  ==========  =====

Rules around the table:
- employee: own calls and recordings; team lead: their department's calls, recordings,
  distribution settings and group analytics; marketer: analytics and call tracking (all
  CDRs, never recordings), no PBX settings; accountant: billing and finance only;
  admin: everything.
- Every *user* (a login session, or a token acting for a user) is an employee as well,
  whatever else they are: an accountant still sees their own calls and recordings, a
  marketer their own recordings (and no one else's). A *service* token
  (no user) has exactly its role's permissions, and "self" / "department" scopes reach
  nothing for it (it has no self and no department).
- The widest scope held wins (all > department > self).
- Refusals: a caller without any permission of the needed kind gets 403 naming the
  permission (decided before the target is looked up, so it says nothing about it); a
  caller who holds the kind but not for that target gets 404, the same answer as for a
  target that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "ROLES",
    "ROLE_PERMISSIONS",
    "Need",
    "Permission",
    "Principal",
    "Scope",
    "check",
    "permissions_of",
    "scope_of",
    "visible_fields",
]

ROLES: Final = ("employee", "team_lead", "marketer", "accountant", "admin")
IMPLICIT_USER_ROLE: Final = "employee"


class Permission(enum.StrEnum):
    USERS_READ_SELF = "users:read:self"
    USERS_READ_DEPARTMENT = "users:read:department"
    USERS_READ_ALL = "users:read:all"
    USERS_READ_CONTACT = "users:read:contact-fields"
    USERS_READ_ROLES = "users:read:roles"
    SIP_CREDENTIALS_SELF = "sip-credentials:self"
    SIP_CREDENTIALS_ALL = "sip-credentials:all"
    CALLS_READ_SELF = "calls:read:self"
    CALLS_READ_DEPARTMENT = "calls:read:department"
    CALLS_READ_ALL = "calls:read:all"
    RECORDINGS_READ_SELF = "recordings:read:self"
    RECORDINGS_READ_DEPARTMENT = "recordings:read:department"
    RECORDINGS_READ_ALL = "recordings:read:all"
    ANALYTICS_READ_DEPARTMENT = "analytics:read:department"
    ANALYTICS_READ_ALL = "analytics:read:all"
    CALL_TRACKING_READ = "call-tracking:read"
    DISTRIBUTION_WRITE_DEPARTMENT = "distribution:write:department"
    BILLING_READ = "billing:read"
    DIRECTORY_SYNC = "directory:sync"
    DIRECTORY_RUNS = "directory:runs"
    TOKENS_MANAGE = "tokens:manage"
    SETTINGS_WRITE = "settings:write"


P = Permission

ROLE_PERMISSIONS: Final[Mapping[str, frozenset[Permission]]] = {
    "employee": frozenset(
        {P.USERS_READ_SELF, P.SIP_CREDENTIALS_SELF, P.CALLS_READ_SELF, P.RECORDINGS_READ_SELF}
    ),
    "team_lead": frozenset(
        {
            P.USERS_READ_DEPARTMENT,
            P.USERS_READ_CONTACT,
            P.CALLS_READ_DEPARTMENT,
            P.RECORDINGS_READ_DEPARTMENT,
            P.ANALYTICS_READ_DEPARTMENT,
            P.DISTRIBUTION_WRITE_DEPARTMENT,
        }
    ),
    "marketer": frozenset({P.CALLS_READ_ALL, P.ANALYTICS_READ_ALL, P.CALL_TRACKING_READ}),
    "accountant": frozenset({P.BILLING_READ}),
    "admin": frozenset(Permission),
}


class Scope(enum.IntEnum):
    """How far a read reaches; the order is the order of width."""

    NONE = 0
    SELF = 1
    DEPARTMENT = 2
    ALL = 3


_SCOPE_SUFFIX: Final = {Scope.SELF: "self", Scope.DEPARTMENT: "department", Scope.ALL: "all"}
SCOPED_RESOURCES: Final = ("users:read", "sip-credentials", "calls:read", "recordings:read", "analytics:read")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request, as the auth step resolved it from its token."""

    token_id: int
    roles: frozenset[str]
    user_id: int | None = None  # None: a service token
    extension: str | None = None
    department: str | None = None
    session: bool = False  # a login session (may log out)
    permissions: frozenset[Permission] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "permissions", permissions_of(self.roles, is_user=self.user_id is not None))


def permissions_of(roles: Iterable[str], *, is_user: bool) -> frozenset[Permission]:
    """The union of the roles' permissions (unknown role names grant nothing); a user is
    an employee as well."""
    names = set(roles) | ({IMPLICIT_USER_ROLE} if is_user else set())
    out: frozenset[Permission] = frozenset()
    for name in names:
        out |= ROLE_PERMISSIONS.get(name, frozenset())
    return out


@dataclass(frozen=True, slots=True)
class Need:
    """What a route requires: `permission` exactly, or `resource` read in any scope
    (e.g. "calls:read": self, department or all)."""

    permission: Permission | None = None
    resource: str | None = None

    def __post_init__(self) -> None:
        if (self.permission is None) == (self.resource is None):
            raise ValueError("a Need names exactly one of permission or resource")
        if self.resource is not None and self.resource not in SCOPED_RESOURCES:
            raise ValueError(f"unknown scoped resource {self.resource!r}")

    @property
    def name(self) -> str:
        """As the 403 message and the OpenAPI document spell it."""
        if self.permission is not None:
            return str(self.permission)
        return f"{self.resource}:{{self,department,all}}"


def scope_of(principal: Principal, resource: str) -> Scope:
    """The widest scope of `resource` the principal holds. Scopes that need a self or a
    department the principal lacks (a service token) reach nothing."""
    for scope in (Scope.ALL, Scope.DEPARTMENT, Scope.SELF):
        if f"{resource}:{_SCOPE_SUFFIX[scope]}" not in principal.permissions:
            continue
        if scope is Scope.SELF and principal.user_id is None:
            continue
        if scope is Scope.DEPARTMENT and not principal.department:
            # a team lead without a department still sees their own data
            continue
        return scope
    return Scope.NONE


def check(principal: Principal, need: Need) -> str | None:
    """None when allowed, else the missing permission's name (for the 403 message).
    Holding a scoped permission that reaches nothing (a service token's "self") counts
    as holding it: the query then returns nothing, as it would for an empty scope."""
    if need.permission is not None:
        return None if need.permission in principal.permissions else need.name
    prefix = f"{need.resource}:"
    if any(
        p.startswith(prefix) and p.rsplit(":", 1)[1] in _SCOPE_SUFFIX.values() for p in principal.permissions
    ):
        return None
    return need.name


BASIC_USER_FIELDS: Final = (
    "extension",
    "name",
    "position",
    "department",
    "enabled",
    "sip_username",
    "manager",
)
CONTACT_FIELDS: Final = ("email", "phone", "mobile")


def visible_fields(principal: Principal, *, is_self: bool) -> tuple[str, ...]:
    """The user fields the principal may see on a row it may read: contact fields with
    users:read:contact-fields, roles with users:read:roles; all of them on its own row."""
    out = list(BASIC_USER_FIELDS)
    if is_self or P.USERS_READ_CONTACT in principal.permissions:
        out.extend(CONTACT_FIELDS)
    if is_self or P.USERS_READ_ROLES in principal.permissions:
        out.append("roles")
    return tuple(out)
