"""Directory presets: which attributes mean what in Active Directory and in OpenLDAP.

A preset gives the default user filter, the stable-id attribute (identity survives renames
and moves), the login attributes and the default PBX field mapping. The change-detection
attribute depends on the server, not the preset: uSNChanged on AD, modifyTimestamp
elsewhere. ``[directory.mapping]`` overrides single fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

Rule = Literal["always", "create_only", "never"]

#: AD userAccountControl flag ACCOUNTDISABLE ([MS-ADTS] §2.2.16).
UAC_ACCOUNTDISABLE: Final = 0x2
#: LDAP_MATCHING_RULE_IN_CHAIN ([MS-ADTS] §3.1.1.3.4.4.3): transitive group membership.
IN_CHAIN_RULE: Final = "1.2.840.113556.1.4.1941"


@dataclass(frozen=True, slots=True)
class Mapping:
    source: str  # an attribute name or a template "{givenName} {sn}"
    rule: Rule = "always"


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    user_filter: str
    id_attribute: str  # objectGUID (binary) / entryUUID (string)
    login_attributes: tuple[str, ...]
    disabled_attribute: str | None  # userAccountControl
    mapping: dict[str, Mapping] = field(default_factory=dict)


AD: Final = Preset(
    name="ad",
    user_filter="(&(objectClass=user)(!(objectClass=computer)))",
    id_attribute="objectGUID",
    login_attributes=("sAMAccountName", "userPrincipalName", "mail"),
    disabled_attribute="userAccountControl",
    mapping={
        "name": Mapping("displayName"),
        "position": Mapping("title"),
        "department": Mapping("department"),
        "phone": Mapping("telephoneNumber"),
        "mobile": Mapping("mobile"),
        "email": Mapping("mail"),
        "extension": Mapping("ipPhone", "create_only"),
        "manager": Mapping("manager"),
        "photo": Mapping("thumbnailPhoto"),
    },
)

OPENLDAP: Final = Preset(
    name="openldap",
    user_filter="(objectClass=inetOrgPerson)",
    id_attribute="entryUUID",
    login_attributes=("uid", "mail"),
    disabled_attribute=None,
    mapping={
        "name": Mapping("{cn}"),
        "position": Mapping("title"),
        "department": Mapping("departmentNumber"),
        "phone": Mapping("telephoneNumber"),
        "mobile": Mapping("mobile"),
        "email": Mapping("mail"),
        "extension": Mapping("telephoneNumber", "never"),
        "manager": Mapping("manager"),
        "photo": Mapping("jpegPhoto"),
    },
)

PRESETS: Final = {"ad": AD, "openldap": OPENLDAP}
