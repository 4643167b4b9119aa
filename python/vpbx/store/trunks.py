"""Trunks: upstream SIP providers, configured the way FreePBX/Asterisk trunks are.

    trunk = await trunks.add_trunk(conn, TrunkSpec(name="sipnet", host="sip.example.net",
                                   username="7001", secret="pw", outbound_prefixes=("+7", "8")),
                                   now=now)

`secret` is stored in clear text because vpbx must answer the provider's digest
challenges with it: treat DATA_DIR/vpbx.db as a credential file (mode 0600, owned by the
vpbx user). Every value is checked before it is written (ValueError with the reason), so a
bad `vpbx trunk add` changes nothing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .errors import ConflictError
from .schema import trunks

TRANSPORTS: Final = ("udp", "tcp")
MIN_REGISTER_INTERVAL_S: Final = 10
MAX_REGISTER_INTERVAL_S: Final = 86400
MAX_STRIP_DIGITS: Final = 20
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HOST_RE: Final = re.compile(r"[A-Za-z0-9._:\[\]-]{1,255}")
_USER_RE: Final = re.compile(r"[A-Za-z0-9_.!~*'()&=+$,;?/%-]{1,128}")  # SIP user part (RFC 3261 §25.1)
_PREFIX_RE: Final = re.compile(r"\+?[0-9]{1,15}")
_DIGITS_RE: Final = re.compile(r"\+?[0-9]{0,31}")
_NUMBER_RE: Final = re.compile(r"\+?[0-9]{2,20}")


@dataclass(frozen=True, slots=True)
class TrunkSpec:
    """What `vpbx trunk add` sets; defaults as FreePBX's chan_pjsip trunk page has them."""

    name: str
    host: str
    username: str
    secret: str
    port: int = 5060
    transport: str = "udp"
    auth_username: str | None = None  # None: username
    from_user: str | None = None  # None: username
    from_domain: str | None = None  # None: host
    register: bool = True
    register_interval_s: int = 300
    outbound_prefixes: tuple[str, ...] = ()  # dialled numbers starting with these go here
    strip_digits: int = 0  # digits removed from the front of the dialled number ...
    add_prefix: str = ""  # ... then this is put in front
    caller_id: str | None = None  # number presented on outbound calls (None: the caller's)
    allow_international: bool = False
    inbound_cidrs: tuple[str, ...] = ()  # calls from these networks come from this trunk
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Trunk(TrunkSpec):
    id: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def spec(self) -> TrunkSpec:
        return TrunkSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TrunkSpec)})


_SPEC_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(TrunkSpec))


def validate(spec: TrunkSpec) -> TrunkSpec:
    """The spec with lists tidied (prefixes and CIDRs de-duplicated); ValueError naming the
    first bad field otherwise."""
    if not _NAME_RE.fullmatch(spec.name):
        raise ValueError(f"trunk name {spec.name!r}: letters, digits, '_', '.', '-' (64 at most)")
    if not _HOST_RE.fullmatch(spec.host):
        raise ValueError(f"host {spec.host!r} is not a host name or address")
    if not 1 <= spec.port <= 65535:
        raise ValueError(f"port {spec.port} is not in 1..65535")
    if spec.transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {spec.transport!r}")
    for label, user in (
        ("username", spec.username),
        ("auth username", spec.auth_username),
        ("from user", spec.from_user),
    ):
        if user is not None and not _USER_RE.fullmatch(user):
            raise ValueError(f"{label} {user!r} is not a SIP user name")
    if not spec.secret or any(c in spec.secret for c in "\r\n\0"):
        raise ValueError("secret must be non-empty, on one line")
    if spec.from_domain is not None and not _HOST_RE.fullmatch(spec.from_domain):
        raise ValueError(f"from domain {spec.from_domain!r} is not a host name")
    if not MIN_REGISTER_INTERVAL_S <= spec.register_interval_s <= MAX_REGISTER_INTERVAL_S:
        raise ValueError(
            f"register interval {spec.register_interval_s} s is not in "
            f"{MIN_REGISTER_INTERVAL_S}..{MAX_REGISTER_INTERVAL_S}"
        )
    for prefix in spec.outbound_prefixes:
        if not _PREFIX_RE.fullmatch(prefix):
            raise ValueError(f"prefix {prefix!r}: digits, optionally after a '+'")
    if not 0 <= spec.strip_digits <= MAX_STRIP_DIGITS:
        raise ValueError(f"strip digits {spec.strip_digits} is not in 0..{MAX_STRIP_DIGITS}")
    if not _DIGITS_RE.fullmatch(spec.add_prefix):
        raise ValueError(f"add prefix {spec.add_prefix!r}: digits, optionally after a '+'")
    if spec.caller_id is not None and not _NUMBER_RE.fullmatch(spec.caller_id):
        raise ValueError(f"caller id {spec.caller_id!r} is not a phone number (digits, optional '+')")
    cidrs = []
    for text in spec.inbound_cidrs:
        try:
            cidrs.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise ValueError(f"inbound source {text!r} is not an address or CIDR") from None
    return dataclasses.replace(
        spec,
        outbound_prefixes=tuple(dict.fromkeys(spec.outbound_prefixes)),
        inbound_cidrs=tuple(dict.fromkeys(cidrs)),
    )


def _row_values(spec: TrunkSpec) -> dict[str, Any]:
    values = {name: getattr(spec, name) for name in _SPEC_FIELDS}
    values["outbound_prefixes"] = json.dumps(list(spec.outbound_prefixes))
    values["inbound_cidrs"] = json.dumps(list(spec.inbound_cidrs))
    return values


def _trunk(m: sa.RowMapping) -> Trunk:
    values = dict(m)
    values["outbound_prefixes"] = tuple(json.loads(values["outbound_prefixes"] or "[]"))
    values["inbound_cidrs"] = tuple(json.loads(values["inbound_cidrs"] or "[]"))
    return Trunk(**values)


async def add_trunk(conn: AsyncConnection, spec: TrunkSpec, *, now: float) -> Trunk:
    """Raises ValueError for a bad value, ConflictError when the name is taken."""
    spec = validate(spec)
    if await get_trunk(conn, spec.name) is not None:
        raise ConflictError(f"trunk {spec.name} already exists")
    try:
        await conn.execute(sa.insert(trunks).values(**_row_values(spec), created_at=now, updated_at=now))
    except sa.exc.IntegrityError as exc:
        raise ConflictError(f"trunk {spec.name} already exists") from exc
    found = await get_trunk(conn, spec.name)
    assert found is not None
    return found


async def get_trunk(conn: AsyncConnection, name: str) -> Trunk | None:
    row = (await conn.execute(sa.select(trunks).where(trunks.c.name == name))).first()
    return None if row is None else _trunk(row._mapping)


async def list_trunks(conn: AsyncConnection, *, enabled_only: bool = False) -> list[Trunk]:
    query = sa.select(trunks).order_by(trunks.c.name)
    if enabled_only:
        query = query.where(trunks.c.enabled.is_(True))
    return [_trunk(r._mapping) for r in await conn.execute(query)]


async def update_trunk(conn: AsyncConnection, name: str, *, now: float, **changes: Any) -> Trunk | None:
    """Change some fields (TrunkSpec names); None when there is no such trunk. The whole
    result is validated first, so a bad value changes nothing."""
    unknown = set(changes) - _SPEC_FIELDS
    if unknown:
        raise ValueError(f"unknown trunk fields: {', '.join(sorted(unknown))}")
    current = await get_trunk(conn, name)
    if current is None:
        return None
    spec = validate(dataclasses.replace(current.spec, **changes))
    if spec.name != name and await get_trunk(conn, spec.name) is not None:
        raise ConflictError(f"trunk {spec.name} already exists")
    await conn.execute(
        sa.update(trunks).where(trunks.c.id == current.id).values(**_row_values(spec), updated_at=now)
    )
    return await get_trunk(conn, spec.name)


async def remove_trunk(conn: AsyncConnection, name: str) -> bool:
    result = await conn.execute(sa.delete(trunks).where(trunks.c.name == name))
    return result.rowcount > 0


async def fingerprint(conn: AsyncConnection) -> tuple[Any, ...]:
    """Changes whenever a trunk is added, removed or changed (every write sets updated_at;
    a removal changes the count or the id sum)."""
    query = sa.select(sa.func.count(), sa.func.max(trunks.c.updated_at), sa.func.sum(trunks.c.id))
    return tuple((await conn.execute(query)).one())


def parse_list(items: Iterable[str]) -> tuple[str, ...]:
    """Repeated or comma-separated CLI values ("+7,8" or "+7" "8") as one tuple."""
    return tuple(p.strip() for item in items for p in item.split(",") if p.strip())
