"""Directory sync core (sans-IO): presets, entry -> person mapping, nested-group roles and
the sync plan. The LDAP protocol and the store live in vpbx.io.ldap_client and
vpbx.io.directory_sync."""

from .groups import GroupWalk, normalize_dn, roles_from_chain
from .mapping import Entry, Person, field_rules, to_people, to_person, wanted_attributes
from .plan import Current, Plan, PlanConfig, make_plan
from .presets import PRESETS, Preset
from .report import DirectoryStats, SyncReport

__all__ = [
    "PRESETS",
    "Current",
    "DirectoryStats",
    "Entry",
    "GroupWalk",
    "Person",
    "Plan",
    "PlanConfig",
    "Preset",
    "SyncReport",
    "field_rules",
    "make_plan",
    "normalize_dn",
    "roles_from_chain",
    "to_people",
    "to_person",
    "wanted_attributes",
]
