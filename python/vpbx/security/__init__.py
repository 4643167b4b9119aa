"""Front-door protection, sans-IO: per-source request-rate limits, failed-auth bans,
trusted networks and per-account source allowlists (issue 4, "Security")."""

from .config import guard_config
from .guard import GuardConfig, GuardStats, SourceGuard
from .netlist import AccountAllowlists, CidrSet, parse_ip, source_key

__all__ = [
    "AccountAllowlists",
    "CidrSet",
    "GuardConfig",
    "GuardStats",
    "SourceGuard",
    "guard_config",
    "parse_ip",
    "source_key",
]
