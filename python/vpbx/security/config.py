"""The guard's configuration from the `[serve]` settings (the one typed settings model,
vpbx.settings), so that `vpbx serve` and tests build the same GuardConfig."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .guard import GuardConfig

if TYPE_CHECKING:  # the settings model pulls in pydantic; the guard itself does not need it
    from vpbx.settings import ServeSettings


def guard_config(settings: ServeSettings) -> GuardConfig:
    """trusted, max_auth_failures, auth_failure_window_s, ban_time_s and max_ban_time_s of
    `[serve]` as a GuardConfig; the rate limits keep GuardConfig's defaults."""
    return GuardConfig(
        trusted=tuple(settings.trusted),
        max_failures=settings.max_auth_failures,
        failure_window=settings.auth_failure_window_s,
        ban_time=settings.ban_time_s,
        max_ban_time=settings.max_ban_time_s,
    )
