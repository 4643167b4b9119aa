"""Request and response bodies, as pydantic models: the OpenAPI document takes their JSON
schemas, the login handler validates its body with `LoginIn`, and the tests validate
answers against them (extra fields forbidden, so the document cannot drift)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AnalyticsOut",
    "BillingOut",
    "CallList",
    "CallOut",
    "ErrorOut",
    "LoginIn",
    "LoginOut",
    "ManagerOut",
    "MeOut",
    "RunList",
    "SipCredentialsOut",
    "SyncOut",
    "UserList",
    "UserOut",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Out):
    code: str = Field(description="One of the codes in vpbx.api.errors.ERROR_STATUS.")
    message: str


class ErrorOut(_Out):
    error: ErrorDetail


class ManagerOut(_Out):
    extension: str
    name: str


class UserOut(_Out):
    """Contact fields (email, phone, mobile) and roles are present only when the caller may
    see them (users:read:contact-fields / users:read:roles, or the caller's own row)."""

    extension: str
    name: str
    position: str | None
    department: str | None
    enabled: bool
    sip_username: str | None
    manager: ManagerOut | None = Field(
        description="The manager from the directory when they are a vpbx user, else null."
    )
    email: str | None = None
    phone: str | None = None
    mobile: str | None = None
    roles: list[str] | None = None


class UserList(_Out):
    items: list[UserOut]
    total: int = Field(description="Rows matching the filters within the caller's scope.")
    limit: int
    offset: int


class SipCredentialsOut(_Out):
    extension: str
    username: str
    password: str | None = Field(description="Kept only for generated accounts; null for chosen passwords.")
    realm: str
    server: str | None = Field(description="Where phones register (host:port), when configured.")
    enabled: bool


class CallOut(_Out):
    id: int
    call_id: str
    direction: str
    from_number: str
    to_number: str
    started_at: float
    answered_at: float | None
    ended_at: float | None
    result: str = Field(
        description="The disposition: answered, no-answer, busy, failed, cancelled, rejected."
    )
    hangup_cause: str | None
    duration_s: float
    billsec: float
    has_recording: bool


class CallList(_Out):
    items: list[CallOut]
    total: int
    limit: int
    offset: int


class MeOut(_Out):
    token_id: int
    kind: str = Field(description="session, user (a token acting for a user) or service.")
    roles: list[str]
    permissions: list[str]
    user: UserOut | None


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=1024)

    login: str = Field(min_length=1, description="Extension, or the directory login name.")
    password: str = Field(min_length=1)


class LoginOut(_Out):
    token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    expires_at: float
    extension: str


class DayRow(_Out):
    day: str = Field(description="UTC date, YYYY-MM-DD.")
    calls: int
    answered: int
    duration_s: float
    billsec: float


class Tally(_Out):
    calls: int
    duration_s: float
    billsec: float


class AnalyticsOut(_Out):
    scope: str
    since: float | None
    until: float | None
    total: Tally
    by_day: list[DayRow]
    by_direction: dict[str, Tally]
    by_result: dict[str, Tally]


class BillingOut(_Out):
    since: float | None
    until: float | None
    calls: int
    answered: int
    billsec: float
    billable_minutes: int = Field(
        description="Sum over answered calls of billsec rounded up to whole minutes."
    )
    by_direction: dict[str, Tally]


class RunOut(_Out):
    id: int | None
    started_at: float
    finished_at: float | None
    dry_run: bool
    status: str
    seen: int
    created: int
    updated: int
    disabled: int
    removed: int
    conflicts: int
    errors: int
    report: dict[str, Any]


class RunList(_Out):
    items: list[RunOut]


class SyncOut(BaseModel):
    """The sync report as the directory sync returns it (free-form)."""

    model_config = ConfigDict(extra="allow")
