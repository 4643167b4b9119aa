"""The sync plan: what must change in the store so it follows the directory (sans-IO).

Input: the users the store holds (:class:`Current`), the people a search returned
(:class:`~vpbx.directory.mapping.Person`), the roles their groups grant, and ``now``.
Output: a :class:`Plan` of creates, updates, disables, re-enables, removals (after the
grace period) and role changes, with conflicts and errors, or an abort reason.

Rules (issue 5):
- identity is the stable id, so a rename or a move is an update;
- an extension comes from the mapped attribute or is allocated from the range, and stays
  with the person (a disabled user keeps their row, so a re-enabled one gets it back);
  a duplicate is a conflict, reported, never overwritten;
- a full run disables users that left the scope; removal waits for the grace period;
- safety: an empty result, or one that would disable more than ``max_shrink_ratio`` of the
  enabled directory users, aborts the run with nothing changed;
- manual users (no directory id) and manual role grants are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .groups import normalize_dn
from .mapping import MAX_PHOTO_BYTES, STORED_FIELDS, Person
from .presets import Mapping as FieldRule


@dataclass(frozen=True, slots=True)
class Current:
    """A user as the store holds it."""

    id: int
    extension: str
    directory_id: str | None
    directory_dn: str | None
    enabled: bool
    disabled_at: float | None
    fields: Mapping[str, str | None]
    roles: frozenset[str] = frozenset()  # roles granted by the directory (not manual ones)


@dataclass(frozen=True, slots=True)
class PlanConfig:
    rules: Mapping[str, FieldRule]
    extension_range: tuple[int, int]
    grace_period_s: float
    max_shrink_ratio: float
    full: bool = True  # False: an incremental run (only changed entries; absence means nothing)


@dataclass(frozen=True, slots=True)
class Create:
    person: Person
    extension: str
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class Update:
    user_id: int
    extension: str
    changes: dict[str, str | None]  # column -> new value (directory_dn included)
    new_extension: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A disable, re-enable or removal of one user."""

    user_id: int
    extension: str
    reason: str = ""


@dataclass(slots=True)
class Plan:
    seen: int = 0
    creates: list[Create] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    disables: list[Change] = field(default_factory=list)
    enables: list[Change] = field(default_factory=list)
    removals: list[Change] = field(default_factory=list)
    grants: list[tuple[int, str]] = field(default_factory=list)  # (user id, role)
    revokes: list[tuple[int, str]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: int = 0  # disabled in the directory and never created
    abort: str | None = None

    @property
    def changes(self) -> int:
        return (
            len(self.creates)
            + len(self.updates)
            + len(self.disables)
            + len(self.enables)
            + len(self.removals)
            + len(self.grants)
            + len(self.revokes)
        )

    def aborted(self, reason: str) -> Plan:
        """The same counts of what was seen, but nothing to apply."""
        return Plan(seen=self.seen, conflicts=self.conflicts, errors=self.errors, abort=reason)


class _Extensions:
    """Extensions in use (every user, manual ones too) and the allocator over the range."""

    def __init__(self, current: Iterable[Current], reserved: Iterable[str], bounds: tuple[int, int]) -> None:
        self.owner: dict[str, str] = {name: f"SIP account {name}" for name in reserved}
        self.owner |= {u.extension: u.directory_id or f"manual user {u.extension}" for u in current}
        self.low, self.high = bounds
        self._next = self.low

    def claim(self, extension: str, who: str) -> str | None:
        """None when claimed, else who holds it."""
        holder = self.owner.get(extension)
        if holder is not None and holder != who:
            return holder
        self.owner[extension] = who
        return None

    def allocate(self, who: str) -> str | None:
        while self._next <= self.high:
            candidate = str(self._next)
            self._next += 1
            if candidate not in self.owner:
                self.owner[candidate] = who
                return candidate
        return None


def _field_changes(user: Current, person: Person, rules: Mapping[str, FieldRule]) -> dict[str, str | None]:
    changes: dict[str, str | None] = {}
    for pbx_field, column in STORED_FIELDS.items():
        rule = rules.get(pbx_field)
        if rule is None or rule.rule != "always" or column not in person.fields:
            continue
        value = person.fields[column]
        if column == "display_name" and value is None:
            value = ""
        if user.fields.get(column) != value:
            changes[column] = value
    if user.directory_dn != person.dn:
        changes["directory_dn"] = person.dn
    return changes


def make_plan(
    current: Iterable[Current],
    people: Iterable[Person],
    *,
    roles_by_dn: Mapping[str, set[str]] | None,
    config: PlanConfig,
    now: float,
    reserved: Iterable[str] = (),
) -> Plan:
    """``roles_by_dn``: normalized user DN -> roles (None: groups not resolved, roles untouched);
    ``reserved``: SIP usernames in use (a generated account's username is its extension)."""
    users = list(current)
    plan = Plan()
    managed = {u.directory_id: u for u in users if u.directory_id is not None}
    exts = _Extensions(users, reserved, config.extension_range)
    ext_rule = config.rules.get("extension")
    ext_always = ext_rule is not None and ext_rule.rule == "always"

    by_id: dict[str, Person] = {}
    for p in people:
        plan.seen += 1
        if p.directory_id in by_id:
            plan.errors.append(f"{p.dn}: same id {p.directory_id} as {by_id[p.directory_id].dn}; ignored")
            continue
        by_id[p.directory_id] = p
        if p.bad_extension is not None:
            plan.errors.append(f"{p.dn}: {p.bad_extension!r} is not an extension; ignored")
        if p.photo_too_large is not None:
            plan.errors.append(
                f"{p.dn}: photo of {p.photo_too_large} bytes is over {MAX_PHOTO_BYTES}; not stored"
            )

    enabled_before = sum(1 for u in managed.values() if u.enabled)
    if config.full and not by_id and enabled_before:
        return plan.aborted("empty result: the search returned no users")

    final_dn: dict[int, str | None] = {}
    final_enabled: dict[int, bool] = {}
    # existing users first: they keep what they hold
    for pid, p in by_id.items():
        u = managed.get(pid)
        if u is None:
            continue
        changes = _field_changes(u, p, config.rules)
        new_ext = None
        if ext_always and p.extension is not None and p.extension != u.extension:
            holder = exts.claim(p.extension, pid)
            if holder is None:
                new_ext = p.extension
            else:
                plan.conflicts.append(
                    f"{p.dn}: extension {p.extension} is held by {holder}; kept {u.extension}"
                )
        if changes or new_ext:
            plan.updates.append(Update(u.id, u.extension, changes, new_ext))
        if p.enabled and not u.enabled:
            plan.enables.append(Change(u.id, u.extension, "enabled in the directory"))
        elif not p.enabled and u.enabled:
            plan.disables.append(Change(u.id, u.extension, "disabled in the directory"))
        final_dn[u.id] = p.dn
        final_enabled[u.id] = p.enabled

    if config.full:
        for pid, u in managed.items():
            if pid not in by_id and u.enabled:
                plan.disables.append(Change(u.id, u.extension, "left the directory scope"))
                final_enabled[u.id] = False

    if enabled_before and len(plan.disables) / enabled_before > config.max_shrink_ratio:
        return plan.aborted(
            f"the run would disable {len(plan.disables)} of {enabled_before} users, more than "
            f"max_shrink_ratio {config.max_shrink_ratio:.0%}"
        )

    # new people: mapped extensions claimed first (in DN order), then allocation
    new = sorted((p for pid, p in by_id.items() if pid not in managed), key=lambda p: p.dn.lower())
    to_allocate: list[Person] = []
    claimed: list[tuple[Person, str]] = []
    for p in new:
        if not p.enabled:
            plan.skipped += 1
            continue
        if p.extension is None:
            to_allocate.append(p)
            continue
        holder = exts.claim(p.extension, p.directory_id)
        if holder is None:
            claimed.append((p, p.extension))
        else:
            plan.conflicts.append(f"{p.dn}: extension {p.extension} is held by {holder}; not created")
    for p in to_allocate:
        ext = exts.allocate(p.directory_id)
        if ext is None:
            plan.errors.append(f"{p.dn}: extension range {config.extension_range} is exhausted; not created")
        else:
            claimed.append((p, ext))
    for p, ext in claimed:
        roles = frozenset(roles_by_dn.get(normalize_dn(p.dn), ())) if roles_by_dn is not None else frozenset()
        plan.creates.append(Create(p, ext, roles))

    if config.full:
        disabled_now = {c.user_id for c in plan.disables}
        for u in managed.values():
            if final_enabled.get(u.id, u.enabled):
                continue
            since = u.disabled_at if u.disabled_at is not None and u.id not in disabled_now else now
            if since + config.grace_period_s <= now:
                plan.removals.append(Change(u.id, u.extension, "grace period over"))

    if roles_by_dn is not None:
        removed = {c.user_id for c in plan.removals}
        for u in managed.values():
            if u.id in removed:
                continue
            dn = final_dn.get(u.id, u.directory_dn)
            wanted = roles_by_dn.get(normalize_dn(dn), set()) if dn else set()
            plan.grants.extend((u.id, r) for r in sorted(wanted - u.roles))
            plan.revokes.extend((u.id, r) for r in sorted(u.roles - wanted))
    return plan
