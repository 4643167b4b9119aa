"""The RBAC table and its pure checks: what each role may do, how scopes resolve, and
which user fields each caller sees (issue 5, "Roles and access")."""

from __future__ import annotations

import pytest

from vpbx.api.rbac import (
    ROLE_PERMISSIONS,
    ROLES,
    Need,
    Permission,
    Principal,
    Scope,
    check,
    scope_of,
    visible_fields,
)

P = Permission


def user(*roles: str, department: str | None = "Sales") -> Principal:
    return Principal(token_id=1, roles=frozenset(roles), user_id=7, extension="1001", department=department)


def service(*roles: str) -> Principal:
    return Principal(token_id=2, roles=frozenset(roles))


# role -> resource -> the scope a *user* with that role gets
EXPECTED_SCOPES = {
    "employee": {"calls:read": Scope.SELF, "recordings:read": Scope.SELF, "analytics:read": Scope.NONE},
    "team_lead": {
        "calls:read": Scope.DEPARTMENT,
        "recordings:read": Scope.DEPARTMENT,
        "analytics:read": Scope.DEPARTMENT,
        "users:read": Scope.DEPARTMENT,
    },
    "marketer": {"calls:read": Scope.ALL, "recordings:read": Scope.SELF, "analytics:read": Scope.ALL},
    "accountant": {"calls:read": Scope.SELF, "recordings:read": Scope.SELF, "analytics:read": Scope.NONE},
    "admin": {
        "calls:read": Scope.ALL,
        "recordings:read": Scope.ALL,
        "analytics:read": Scope.ALL,
        "users:read": Scope.ALL,
        "sip-credentials": Scope.ALL,
    },
}


@pytest.mark.parametrize("role", ROLES)
def test_user_scopes_per_role(role: str) -> None:
    for resource, scope in EXPECTED_SCOPES[role].items():
        assert scope_of(user(role), resource) is scope, (role, resource)


def test_marketer_never_gets_recordings_or_settings_and_accountant_only_billing() -> None:
    marketer, accountant = ROLE_PERMISSIONS["marketer"], ROLE_PERMISSIONS["accountant"]
    assert not any(str(p).startswith("recordings:") for p in marketer)
    assert P.SETTINGS_WRITE not in marketer and P.DISTRIBUTION_WRITE_DEPARTMENT not in marketer
    assert accountant == {P.BILLING_READ}
    assert ROLE_PERMISSIONS["admin"] == frozenset(Permission)
    only_admin = {
        P.DIRECTORY_SYNC,
        P.DIRECTORY_RUNS,
        P.TOKENS_MANAGE,
        P.SETTINGS_WRITE,
        P.SIP_CREDENTIALS_ALL,
    }
    for role in ROLES[:-1]:
        assert not only_admin & ROLE_PERMISSIONS[role], role


def test_a_user_is_an_employee_too_but_a_service_token_is_only_its_role() -> None:
    assert scope_of(user("accountant"), "calls:read") is Scope.SELF
    assert scope_of(user(), "recordings:read") is Scope.SELF
    assert check(service("accountant"), Need(resource="calls:read")) == "calls:read:{self,department,all}"
    assert check(service("accountant"), Need(permission=P.BILLING_READ)) is None
    # a service token's "self" and "department" reach nothing, but are not refused
    assert check(service("employee"), Need(resource="calls:read")) is None
    assert scope_of(service("employee"), "calls:read") is Scope.NONE
    assert scope_of(service("team_lead"), "calls:read") is Scope.NONE
    assert scope_of(service("admin"), "calls:read") is Scope.ALL


def test_team_lead_without_department_falls_back_to_self() -> None:
    assert scope_of(user("team_lead", department=None), "calls:read") is Scope.SELF
    assert scope_of(user("team_lead", department=""), "users:read") is Scope.SELF


def test_unknown_roles_grant_nothing_and_roles_combine() -> None:
    assert service("root").permissions == frozenset()
    both = user("marketer", "accountant")
    assert P.BILLING_READ in both.permissions and P.ANALYTICS_READ_ALL in both.permissions


def test_check_names_the_missing_permission() -> None:
    assert check(user(), Need(permission=P.BILLING_READ)) == "billing:read"
    assert check(user(), Need(resource="analytics:read")) == "analytics:read:{self,department,all}"
    assert check(user("team_lead"), Need(resource="analytics:read")) is None
    assert check(user(), Need(resource="sip-credentials")) is None
    assert (
        check(service("marketer"), Need(resource="sip-credentials"))
        == "sip-credentials:{self,department,all}"
    )
    with pytest.raises(ValueError, match="exactly one"):
        Need()
    with pytest.raises(ValueError, match="unknown scoped resource"):
        Need(resource="billing")


def test_visible_fields() -> None:
    basic = {"extension", "name", "position", "department", "enabled", "sip_username", "manager"}
    assert set(visible_fields(user(), is_self=False)) == basic
    assert set(visible_fields(user(), is_self=True)) == basic | {"email", "phone", "mobile", "roles"}
    assert set(visible_fields(user("team_lead"), is_self=False)) == basic | {"email", "phone", "mobile"}
    assert set(visible_fields(service("admin"), is_self=False)) == basic | {
        "email",
        "phone",
        "mobile",
        "roles",
    }


def test_the_documented_matrix_is_the_table() -> None:
    from vpbx.api import rbac  # noqa: PLC0415 (the module itself, for its docstring)

    lines = (rbac.__doc__ or "").splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    header = lines[rules[0] + 1]
    columns = {role: header.index(role) for role in ROLES}
    documented: dict[str, set[str]] = {role: set() for role in ROLES}
    for line in lines[rules[1] + 1 : rules[2]]:
        name = line.split()[0]
        for role, at in columns.items():
            if line[at : at + 1] == "x":
                documented[role].add(name)
    assert documented == {role: {str(p) for p in ROLE_PERMISSIONS[role]} for role in ROLES}
