"""The report of one sync run, and the running figures /metrics shows (sans-IO data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .plan import Plan

Status = Literal["ok", "aborted", "failed"]
#: ``kind`` label values of vpbx_directory_changes_total
CHANGE_KINDS: Final = ("created", "updated", "disabled", "enabled", "removed", "roles", "conflicts")
#: ``reason`` label values of vpbx_directory_sync_failures_total
FAILURE_REASONS: Final = ("unreachable", "bind", "tls", "search", "empty", "shrink", "store", "config")
MAX_DETAILS: Final = 200  # per list in the stored report


@dataclass(slots=True)
class SyncReport:
    status: Status
    started_at: float
    finished_at: float
    dry_run: bool = False
    mode: Literal["full", "incremental"] = "full"
    seen: int = 0
    created: int = 0
    updated: int = 0
    disabled: int = 0
    enabled: int = 0
    removed: int = 0
    role_changes: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reason: str | None = None  # a FAILURE_REASONS value when not ok
    message: str = ""  # why it aborted or failed, for people
    high_water: str | None = None  # change mark for the next incremental run
    details: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def duration_s(self) -> float:
        return self.finished_at - self.started_at

    def counts(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "disabled": self.disabled,
            "enabled": self.enabled,
            "removed": self.removed,
            "roles": self.role_changes,
            "conflicts": len(self.conflicts),
        }

    def as_json(self) -> dict[str, Any]:
        """What the directory_runs row keeps in its report column (lists bounded)."""
        return {
            "mode": self.mode,
            "enabled": self.enabled,
            "role_changes": self.role_changes,
            "skipped": self.skipped,
            "reason": self.reason,
            "message": self.message,
            "high_water": self.high_water,
            "conflicts": self.conflicts[:MAX_DETAILS],
            "errors": self.errors[:MAX_DETAILS],
            "details": {k: v[:MAX_DETAILS] for k, v in self.details.items()},
        }


def from_plan(
    plan: Plan, *, started_at: float, finished_at: float, dry_run: bool, mode: Literal["full", "incremental"]
) -> SyncReport:
    """The report of a plan that was applied (or would be, in a dry run), or that aborted."""
    report = SyncReport(
        status="aborted" if plan.abort else "ok",
        started_at=started_at,
        finished_at=finished_at,
        dry_run=dry_run,
        mode=mode,
        seen=plan.seen,
        conflicts=list(plan.conflicts),
        errors=list(plan.errors),
        skipped=plan.skipped,
    )
    if plan.abort:
        report.reason = "empty" if plan.abort.startswith("empty") else "shrink"
        report.message = plan.abort
        return report
    report.created = len(plan.creates)
    report.updated = len(plan.updates)
    report.disabled = len(plan.disables)
    report.enabled = len(plan.enables)
    report.removed = len(plan.removals)
    report.role_changes = len(plan.grants) + len(plan.revokes) + sum(len(c.roles) for c in plan.creates)
    report.details = {
        "created": [f"{c.extension} {c.person.dn}" for c in plan.creates],
        "updated": [f"{u.extension}: {', '.join(sorted(u.changes))}" for u in plan.updates],
        "disabled": [f"{c.extension}: {c.reason}" for c in plan.disables],
        "enabled": [c.extension for c in plan.enables],
        "removed": [c.extension for c in plan.removals],
    }
    return report


def failed(
    reason: str,
    message: str,
    *,
    started_at: float,
    finished_at: float,
    dry_run: bool,
    mode: Literal["full", "incremental"],
) -> SyncReport:
    return SyncReport(
        status="failed",
        started_at=started_at,
        finished_at=finished_at,
        dry_run=dry_run,
        mode=mode,
        reason=reason,
        message=message,
    )


@dataclass(slots=True)
class DirectoryStats:
    """Running figures of the sync in one process (read by vpbx.metrics at scrape time)."""

    last_success: float | None = None
    last_duration_s: float | None = None
    entries_seen: int = 0
    changes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANGE_KINDS, 0))
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAILURE_REASONS, 0))

    def record(self, report: SyncReport) -> None:
        self.last_duration_s = report.duration_s
        if report.ok:
            self.entries_seen = report.seen
            if not report.dry_run:
                self.last_success = report.finished_at
                for kind, n in report.counts().items():
                    self.changes[kind] += n
        else:
            reason = report.reason if report.reason in self.failures else "search"
            self.failures[reason] += 1
