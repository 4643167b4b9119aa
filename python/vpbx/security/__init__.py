"""Front-door protection, sans-IO: per-source request-rate limits, failed-auth bans,
trusted networks, per-account source allowlists and call limits (issue 4, "Security")."""

from .calls import AccountCallLimits
from .config import guard_config
from .guard import GuardConfig, GuardStats, SourceGuard
from .netlist import AccountAllowlists, CidrSet, parse_ip, source_key
from .verdict import Verdict, judge

__all__ = [
    "AccountAllowlists",
    "AccountCallLimits",
    "CidrSet",
    "GuardConfig",
    "GuardStats",
    "SourceGuard",
    "Verdict",
    "guard_config",
    "judge",
    "parse_ip",
    "source_key",
]
