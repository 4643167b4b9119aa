"""From a directory entry (raw attribute values, as bytes) to a Person the plan works on.

Sans-IO: the LDAP client hands over ``Entry(dn, {attribute: [bytes, ...]})``; nothing here
reads a socket. Attribute names are matched case-insensitively (LDAP attribute descriptions
are case-insensitive, RFC 4512 §2.5).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from .presets import UAC_ACCOUNTDISABLE, Preset
from .presets import Mapping as FieldRule

#: PBX fields stored on the user row -> column name. ``manager`` and ``photo`` may be mapped
#: but have no column yet (they are read for the report only when mapped).
STORED_FIELDS: Final = {
    "name": "display_name",
    "position": "position",
    "department": "department",
    "phone": "phone",
    "mobile": "mobile",
    "email": "email",
}
_TEMPLATE: Final = re.compile(r"\{([A-Za-z][A-Za-z0-9-]*)\}")
_EXTENSION: Final = re.compile(r"^[0-9]{2,15}$")
MAX_FIELD: Final = 255


class MappingError(ValueError):
    """An entry that cannot become a person (no stable id)."""


@dataclass(frozen=True, slots=True)
class Entry:
    dn: str
    attributes: Mapping[str, list[bytes]]


@dataclass(frozen=True, slots=True)
class Person:
    directory_id: str
    dn: str
    fields: dict[str, str | None]  # column name -> value (STORED_FIELDS values)
    extension: str | None  # from the mapped attribute, when present and valid
    enabled: bool
    logins: tuple[str, ...] = ()
    bad_extension: str | None = None  # a mapped value that is not an extension


def field_rules(preset: Preset, overrides: Mapping[str, FieldRule]) -> dict[str, FieldRule]:
    """The preset's mapping with ``[directory.mapping]`` entries on top."""
    rules = dict(preset.mapping)
    rules.update(overrides)
    return rules


def source_attributes(source: str) -> list[str]:
    """Attributes a mapping source reads: ``"title"`` or the names in ``"{givenName} {sn}"``."""
    names = _TEMPLATE.findall(source)
    return names if names else [source]


def wanted_attributes(preset: Preset, rules: Mapping[str, FieldRule]) -> list[str]:
    """Every attribute the sync asks the server for (photos only when stored, i.e. never now)."""
    names = {preset.id_attribute, *preset.login_attributes}
    if preset.disabled_attribute:
        names.add(preset.disabled_attribute)
    for pbx_field, rule in rules.items():
        if (pbx_field in STORED_FIELDS or pbx_field == "extension") and rule.rule != "never":
            names.update(source_attributes(rule.source))
    return sorted(names, key=str.lower)


def canonical_id(attribute: str, raw: bytes) -> str:
    """The stable id as text: AD's objectGUID is 16 bytes in the mixed-endian GUID layout
    ([MS-DTYP] §2.3.4.2), shown in its usual form; anything else (entryUUID) is its text."""
    if attribute.lower() == "objectguid" and len(raw) == 16:
        return str(uuid.UUID(bytes_le=raw))
    return raw.decode("utf-8", "replace").strip().lower()


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip()


class _Lookup:
    def __init__(self, attributes: Mapping[str, list[bytes]]) -> None:
        self.values = {k.lower(): v for k, v in attributes.items()}

    def first(self, name: str) -> str | None:
        values = self.values.get(name.lower())
        if not values:
            return None
        text = _text(values[0])
        return text or None

    def all(self, name: str) -> list[str]:
        return [_text(v) for v in self.values.get(name.lower(), [])]

    def raw(self, name: str) -> bytes | None:
        values = self.values.get(name.lower())
        return values[0] if values else None


def render(source: str, lookup: _Lookup) -> str | None:
    """An attribute's first value, or a template with missing attributes left empty and
    spaces collapsed; None when nothing is left."""
    if "{" not in source:
        value = lookup.first(source)
    else:
        value = " ".join(_TEMPLATE.sub(lambda m: lookup.first(m.group(1)) or "", source).split())
    if not value:
        return None
    return value[:MAX_FIELD]


def to_person(entry: Entry, preset: Preset, rules: Mapping[str, FieldRule]) -> Person:
    """Raises MappingError when the entry has no stable id."""
    lookup = _Lookup(entry.attributes)
    raw_id = lookup.raw(preset.id_attribute)
    if not raw_id:
        raise MappingError(f"{entry.dn}: no {preset.id_attribute}")
    fields: dict[str, str | None] = {}
    for pbx_field, column in STORED_FIELDS.items():
        rule = rules.get(pbx_field)
        if rule is not None and rule.rule != "never":
            fields[column] = render(rule.source, lookup)
    extension = bad = None
    ext_rule = rules.get("extension")
    if ext_rule is not None and ext_rule.rule != "never":
        value = render(ext_rule.source, lookup)
        if value is not None:
            compact = value.replace(" ", "").replace("-", "")
            if _EXTENSION.match(compact):
                extension = compact
            else:
                bad = value
    enabled = True
    if preset.disabled_attribute:
        uac = lookup.first(preset.disabled_attribute)
        if uac is not None and uac.lstrip("-").isdigit():
            enabled = not int(uac) & UAC_ACCOUNTDISABLE
    logins = tuple(v for name in preset.login_attributes for v in lookup.all(name) if v)
    return Person(
        directory_id=canonical_id(preset.id_attribute, raw_id),
        dn=entry.dn,
        fields=fields,
        extension=extension,
        enabled=enabled,
        logins=logins,
        bad_extension=bad,
    )


def to_people(
    entries: Iterable[Entry], preset: Preset, rules: Mapping[str, FieldRule]
) -> tuple[list[Person], list[str]]:
    """People and the errors of entries that could not be mapped (reported, not fatal)."""
    people: list[Person] = []
    errors: list[str] = []
    for entry in entries:
        try:
            people.append(to_person(entry, preset, rules))
        except MappingError as e:
            errors.append(str(e))
    return people, errors
