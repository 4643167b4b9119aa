"""Front-door protection, sans-IO: per-source request-rate limits, failed-auth bans,
trusted networks and per-account source allowlists (issue 4, "Security")."""

from .guard import GuardConfig, GuardStats, SourceGuard
from .netlist import AccountAllowlists, CidrSet, parse_ip, source_key

__all__ = [
    "AccountAllowlists",
    "CidrSet",
    "GuardConfig",
    "GuardStats",
    "SourceGuard",
    "parse_ip",
    "source_key",
]
