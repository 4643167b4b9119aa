"""From a directory entry (raw attribute values, as bytes) to a Person the plan works on.

Sans-IO: the LDAP client hands over ``Entry(dn, {attribute: [bytes, ...]})``; nothing here
reads a socket. Attribute names are matched case-insensitively (LDAP attribute descriptions
are case-insensitive, RFC 4512 §2.5).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from .presets import UAC_ACCOUNTDISABLE, Preset
from .presets import Mapping as FieldRule

#: PBX fields stored on the user row -> column name. ``photo`` is compared by its SHA-256
#: (the column the plan sees); the bytes go from the LDAP page to the store on their own
#: (vpbx.io.ldap_client.PhotoSpool), never through the plan.
STORED_FIELDS: Final = {
    "name": "display_name",
    "position": "position",
    "department": "department",
    "phone": "phone",
    "mobile": "mobile",
    "email": "email",
    "manager": "manager_dn",
    "photo": "photo_sha256",
}
PHOTO_COLUMN: Final = "photo_sha256"
_TEMPLATE: Final = re.compile(r"\{([A-Za-z][A-Za-z0-9-]*)\}")
_EXTENSION: Final = re.compile(r"^[0-9]{2,15}$")
MAX_FIELD: Final = 255
#: Longer limits than MAX_FIELD (the column sizes in vpbx.store.schema).
FIELD_LIMITS: Final = {"manager_dn": 1024}
#: A photo larger than this is not stored (reported). AD caps thumbnailPhoto at 100 KB.
MAX_PHOTO_BYTES: Final = 256 * 1024


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
    photo_too_large: int | None = None  # size of a photo over MAX_PHOTO_BYTES (not stored)


def field_rules(preset: Preset, overrides: Mapping[str, FieldRule]) -> dict[str, FieldRule]:
    """The preset's mapping with ``[directory.mapping]`` entries on top."""
    rules = dict(preset.mapping)
    rules.update(overrides)
    return rules


def source_attributes(source: str) -> list[str]:
    """Attributes a mapping source reads: ``"title"`` or the names in ``"{givenName} {sn}"``."""
    names = _TEMPLATE.findall(source)
    return names if names else [source]


def wanted_attributes(preset: Preset, rules: Mapping[str, FieldRule], *, photo: bool = True) -> list[str]:
    """Every attribute the sync asks the server for (the photo only when its rule is not
    ``never``, and not at all with ``photo=False``: a login check needs no photo)."""
    names = {preset.id_attribute, *preset.login_attributes}
    if preset.disabled_attribute:
        names.add(preset.disabled_attribute)
    for pbx_field, rule in rules.items():
        if pbx_field == "photo" and not photo:
            continue
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


def render(source: str, lookup: _Lookup, limit: int = MAX_FIELD) -> str | None:
    """An attribute's first value, or a template with missing attributes left empty and
    spaces collapsed; None when nothing is left."""
    if "{" not in source:
        value = lookup.first(source)
    else:
        value = " ".join(_TEMPLATE.sub(lambda m: lookup.first(m.group(1)) or "", source).split())
    if not value:
        return None
    return value[:limit]


def photo_bytes(entry: Entry, rules: Mapping[str, FieldRule]) -> bytes | None:
    """The raw photo of an entry when the mapping reads it and it is within
    MAX_PHOTO_BYTES (the bytes the store keeps; to_person keeps only their SHA-256)."""
    rule = rules.get("photo")
    if rule is None or rule.rule == "never":
        return None
    raw = _Lookup(entry.attributes).raw(source_attributes(rule.source)[0])
    if not raw or len(raw) > MAX_PHOTO_BYTES:
        return None
    return raw


def photo_sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def to_person(entry: Entry, preset: Preset, rules: Mapping[str, FieldRule]) -> Person:
    """Raises MappingError when the entry has no stable id."""
    lookup = _Lookup(entry.attributes)
    raw_id = lookup.raw(preset.id_attribute)
    if not raw_id:
        raise MappingError(f"{entry.dn}: no {preset.id_attribute}")
    fields: dict[str, str | None] = {}
    too_large = None
    for pbx_field, column in STORED_FIELDS.items():
        rule = rules.get(pbx_field)
        if rule is None or rule.rule == "never":
            continue
        if column != PHOTO_COLUMN:
            fields[column] = render(rule.source, lookup, FIELD_LIMITS.get(column, MAX_FIELD))
            continue
        raw = lookup.raw(source_attributes(rule.source)[0])
        if raw and len(raw) > MAX_PHOTO_BYTES:
            too_large = len(raw)  # left out: the stored photo stays as it is
        else:
            fields[column] = photo_sha256(raw) if raw else None
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
        photo_too_large=too_large,
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
