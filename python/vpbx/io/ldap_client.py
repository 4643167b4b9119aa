"""The LDAP side of the directory sync (ldap3, blocking: call it in a thread).

- Connection: ldap:// with StartTLS (RFC 4513 §3) or ldaps://, the configured CA and a
  host name check done by Python's ssl module; several URLs fail over in order (ldap3
  ServerPool); connect and operation timeouts.
- Users: one subtree search, paged with the Simple Paged Results control (RFC 2696), so AD's
  1,000-entry limit does not cut the result; raw values go to the sans-IO mapping.
- Groups: on Active Directory the transitive members of each role group come from
  LDAP_MATCHING_RULE_IN_CHAIN; elsewhere vpbx.directory.GroupWalk resolves nesting by
  reading group entries.
- Incremental runs: only entries changed since the last run's mark (uSNChanged on AD,
  modifyTimestamp elsewhere).
"""

from __future__ import annotations

import contextlib
import ssl
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Final

import ldap3
from ldap3.core import exceptions as lx
from ldap3.utils.conv import escape_filter_chars

from vpbx.directory import Entry, GroupWalk, roles_from_chain
from vpbx.directory.mapping import (
    PHOTO_COLUMN,
    MappingError,
    Person,
    field_rules,
    photo_bytes,
    to_person,
    wanted_attributes,
)
from vpbx.directory.presets import IN_CHAIN_RULE, PRESETS, Preset
from vpbx.directory.presets import Mapping as FieldRule
from vpbx.settings import DirectorySettings, SettingsError

__all__ = [
    "DirectoryError",
    "LdapDirectory",
    "PhotoSpool",
    "Snapshot",
    "bind_as",
    "fetch_snapshot",
    "rules_of",
]

PAGED_RESULTS_OID: Final = "1.2.840.113556.1.4.319"  # RFC 2696 §2
AD_CAPABILITY_OID: Final = "1.2.840.113556.1.4.800"  # LDAP_CAP_ACTIVE_DIRECTORY_OID
GROUP_MEMBER_ATTRIBUTES: Final = ("member", "uniqueMember")

Progress = Callable[[int, int | None], None]


class DirectoryError(Exception):
    """The directory could not be used; ``reason`` is a vpbx_directory_sync_failures_total label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _VerifiedTls(ldap3.Tls):
    """TLS with certificate and host name verification by the ssl module (ldap3's own
    host name check uses the deprecated ssl.match_hostname)."""

    def __init__(self, ca_file: str | None) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)
        self._context = ssl.create_default_context(cafile=ca_file)

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self._context.wrap_socket(
            connection.socket, server_hostname=connection.server.host, do_handshake_on_connect=do_handshake
        )


def _servers(settings: DirectorySettings) -> list[ldap3.Server]:
    if not settings.url:
        raise DirectoryError("config", "directory.url is not set")
    tls = _VerifiedTls(str(settings.ca_file) if settings.ca_file else None)
    return [
        ldap3.Server(url, tls=tls, connect_timeout=settings.connect_timeout_s, get_info=ldap3.DSA)
        for url in settings.url
    ]


def _classify(exc: BaseException) -> DirectoryError:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, lx.LDAPOperationResult):  # "LDAPInvalidCredentialsResult - 49 - ..." -> its parts
        text = " ".join(str(p) for p in (exc.description, exc.message) if p) or text
    if isinstance(exc, DirectoryError):
        return exc
    if "CERTIFICATE" in text.upper() or isinstance(exc, (ssl.SSLError, lx.LDAPStartTLSError)):
        return DirectoryError("tls", f"TLS failed: {text}")
    if isinstance(exc, (lx.LDAPInvalidCredentialsResult, lx.LDAPBindError)):
        return DirectoryError("bind", f"bind refused: {text}")
    if isinstance(exc, (lx.LDAPInvalidFilterError, lx.LDAPObjectClassError, lx.LDAPAttributeError)):
        return DirectoryError("config", f"bad filter or attribute: {text}")
    unreachable = (
        lx.LDAPSocketOpenError,
        lx.LDAPServerPoolExhaustedError,
        lx.LDAPSocketReceiveError,
        lx.LDAPSessionTerminatedByServerError,
        OSError,
    )
    if isinstance(exc, unreachable):
        return DirectoryError("unreachable", f"directory unreachable: {text}")
    return DirectoryError("search", f"directory error: {text}")


def _open(settings: DirectorySettings, user: str | None, password: str | None) -> ldap3.Connection:
    """A bound connection to the first server that answers, in the configured order
    (failover; ldap3's ServerPool would sleep 10 s between rounds). A bind refusal or a
    certificate problem is not a reason to try the next server: it is raised at once."""
    last: Exception | None = None
    for server in _servers(settings):
        conn = ldap3.Connection(
            server,
            user=user,
            password=password,
            auto_bind=ldap3.AUTO_BIND_NONE,
            receive_timeout=int(max(settings.timeout_s, 1)),
            raise_exceptions=True,
            read_only=True,
        )
        try:
            conn.open()
            if settings.start_tls and not conn.server.ssl:
                conn.start_tls()
            conn.bind()
        except Exception as e:
            with contextlib.suppress(Exception):  # the socket may be gone already; keep the first error
                conn.unbind()
            if conn.socket is not None:  # a failed connect leaves it open
                conn.socket.close()
            error = _classify(e)
            if error.reason != "unreachable":
                raise
            last = e
            continue
        return conn
    assert last is not None
    raise last


def rules_of(settings: DirectorySettings) -> tuple[Preset, dict[str, FieldRule]]:
    preset = PRESETS[settings.preset]
    overrides = {k: FieldRule(v.source, v.rule) for k, v in settings.mapping.items()}
    return preset, field_rules(preset, overrides)


def user_filter(settings: DirectorySettings, preset: Preset, extra: str = "") -> str:
    parts = [settings.user_filter or preset.user_filter, settings.root_filter, extra]
    parts = [p if p.startswith("(") else f"({p})" for p in parts if p]
    return parts[0] if len(parts) == 1 else "(&" + "".join(parts) + ")"


class PhotoSpool:
    """Photo bytes of one run, by SHA-256, in an anonymous temporary file: the run holds
    one page of photos in memory at a time, not the photos of everyone (issue 5's memory
    target is 2 KiB per employee; a thumbnailPhoto alone may be 100 KB). The same photo
    is kept once. Close it when the run is over (the file is gone then)."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._index: dict[str, tuple[int, int]] = {}
        self._end = 0

    def __len__(self) -> int:
        return len(self._index)

    @property
    def size(self) -> int:
        """Bytes spooled."""
        return self._end

    def put(self, sha256: str, data: bytes) -> None:
        if sha256 in self._index:
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="vpbx-photos-")  # noqa: SIM115 (closed in close())
        self._file.seek(self._end)
        self._file.write(data)
        self._index[sha256] = (self._end, len(data))
        self._end += len(data)

    def get(self, sha256: str) -> bytes:
        """Raises KeyError for a photo this run did not read."""
        offset, length = self._index[sha256]
        assert self._file is not None
        self._file.seek(offset)
        return self._file.read(length)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._index.clear()


@dataclass(slots=True)
class Snapshot:
    """What one run read: people, mapping errors, roles by user DN (None: no role mapping), the
    change mark for the next incremental run and the attribute it is of, and the photos
    read (close the snapshot when done with it)."""

    people: list[Person]
    errors: list[str]
    roles_by_dn: dict[str, set[str]] | None
    high_water: str | None
    change_attribute: str
    missing_groups: list[str] = field(default_factory=list)
    photos: PhotoSpool = field(default_factory=PhotoSpool)

    def close(self) -> None:
        self.photos.close()


class LdapDirectory:
    """One bound service connection."""

    def __init__(self, settings: DirectorySettings) -> None:
        self.settings = settings
        try:
            self.conn = _open(settings, settings.bind_dn or None, settings.password() or None)
        except SettingsError as e:
            raise DirectoryError("config", str(e)) from None
        except Exception as e:
            raise _classify(e) from None
        info = self.conn.server.info
        caps = {
            str(c[0]) if isinstance(c, tuple) else str(c) for c in (info.supported_features if info else [])
        }
        caps |= {str(c) for c in (info.other.get("supportedCapabilities", []) if info else [])}
        self.is_ad = AD_CAPABILITY_OID in caps
        self.change_attribute = "uSNChanged" if self.is_ad else "modifyTimestamp"

    def close(self) -> None:
        self.conn.unbind()

    def paged(
        self, base: str, flt: str, attributes: list[str], progress: Progress | None = None
    ) -> Iterator[tuple[str, dict[str, list[bytes]]]]:
        """(dn, raw attributes) of every entry, page after page (RFC 2696 §3: repeat with
        the cookie until the server returns an empty one)."""
        cookie: bytes | None = None
        done = 0
        while True:
            self.conn.search(
                base,
                flt,
                ldap3.SUBTREE,
                attributes=attributes,
                paged_size=self.settings.page_size,
                paged_cookie=cookie,
                time_limit=int(self.settings.timeout_s),
            )
            if self.conn.result.get("result") != 0:  # ldap3 does not raise for size/time limits
                what = self.conn.result.get("description") or self.conn.result.get("result")
                raise DirectoryError("search", f"search under {base} ended with {what}: result incomplete")
            for item in self.conn.response or []:
                if item.get("type") == "searchResEntry":
                    done += 1
                    yield item["dn"], item["raw_attributes"]
            if progress is not None:
                progress(done, None)
            control = (self.conn.result.get("controls") or {}).get(PAGED_RESULTS_OID) or {}
            cookie = (control.get("value") or {}).get("cookie")
            if not cookie:
                return

    def users(
        self,
        preset: Preset,
        rules: Mapping[str, FieldRule],
        *,
        since: str | None,
        progress: Progress | None,
        photos: PhotoSpool | None = None,
    ) -> tuple[list[Person], list[str], str | None]:
        """People (mapped page by page, so raw values never pile up; photos go to
        ``photos``), mapping errors, and the newest change mark seen."""
        attributes = [*wanted_attributes(preset, rules), self.change_attribute]
        extra = ""
        if since is not None:
            mark = str(int(since) + 1) if self.is_ad else since
            extra = f"({self.change_attribute}>={escape_filter_chars(mark)})"
        flt = user_filter(self.settings, preset, extra)
        people: list[Person] = []
        errors: list[str] = []
        high: str | None = since
        key = self.change_attribute.lower()
        for dn, raw in self.paged(self.settings.base_dn, flt, attributes, progress):
            entry = Entry(dn, raw)
            try:
                person = to_person(entry, preset, rules)
            except MappingError as e:
                errors.append(str(e))
            else:
                people.append(person)
                sha = person.fields.get(PHOTO_COLUMN)
                if sha is not None and photos is not None:
                    data = photo_bytes(entry, rules)
                    if data is not None:
                        photos.put(sha, data)
            for name, values in raw.items():
                if name.lower() == key and values:
                    mark = values[0].decode("ascii", "replace")
                    if high is None or _later(mark, high, numeric=self.is_ad):
                        high = mark
        return people, errors, high

    def group_members(self, dn: str) -> list[str] | None:
        """The member DNs of a group entry; None when it does not exist or is no group."""
        try:
            self.conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(GROUP_MEMBER_ATTRIBUTES))
        except lx.LDAPNoSuchObjectResult:
            return None
        if not self.conn.response:
            return None
        raw = self.conn.response[0]["raw_attributes"]
        found = [
            v.decode("utf-8", "replace") for k, vs in raw.items() if k in GROUP_MEMBER_ATTRIBUTES for v in vs
        ]
        has_attr = any(k in GROUP_MEMBER_ATTRIBUTES for k in raw)
        return found if has_attr else None

    def roles(self, preset: Preset, user_dns: list[str]) -> tuple[dict[str, set[str]], list[str]]:
        role_groups = self.settings.roles
        if self.is_ad:
            by_role: dict[str, list[str]] = {}
            for role, groups in role_groups.items():
                for group in groups:
                    chain = f"(memberOf:{IN_CHAIN_RULE}:={escape_filter_chars(group)})"
                    flt = user_filter(self.settings, preset, chain)
                    by_role.setdefault(role, []).extend(
                        dn for dn, _ in self.paged(self.settings.base_dn, flt, [])
                    )
            return roles_from_chain(by_role), []
        walk = GroupWalk(role_groups, user_dns)
        while batch := walk.pending():
            for dn in batch:
                walk.feed(dn, self.group_members(dn))
        return walk.roles_by_user(), walk.missing


def _later(a: str, b: str, *, numeric: bool) -> bool:
    if numeric and a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return a > b


def fetch_snapshot(
    settings: DirectorySettings, *, since: str | None = None, progress: Progress | None = None
) -> Snapshot:
    """Everything a run needs from the directory (blocking). Raises DirectoryError."""
    preset, rules = rules_of(settings)
    directory = LdapDirectory(settings)
    photos = PhotoSpool()
    try:
        people, errors, high = directory.users(preset, rules, since=since, progress=progress, photos=photos)
        roles: dict[str, set[str]] | None = None
        missing: list[str] = []
        if settings.roles:
            roles, missing = directory.roles(preset, [p.dn for p in people])
        return Snapshot(people, errors, roles, high, directory.change_attribute, missing, photos)
    except DirectoryError:
        photos.close()
        raise
    except Exception as e:
        photos.close()
        raise _classify(e) from None
    finally:
        directory.close()


def bind_as(settings: DirectorySettings, login: str, password: str) -> str | None:
    """The directory id of the user whose login (sAMAccountName / uid / mail / mapped
    extension) and password bind; None for bad credentials. Raises DirectoryError when the
    directory cannot be asked."""
    if not login or not password:  # an empty password would be an unauthenticated bind (RFC 4513 §5.1.2)
        return None
    preset, rules = rules_of(settings)
    names = list(preset.login_attributes)
    ext = rules.get("extension")
    if ext is not None and ext.rule != "never" and "{" not in ext.source:
        names.append(ext.source)
    value = escape_filter_chars(login)
    flt = user_filter(settings, preset, "(|" + "".join(f"({n}={value})" for n in names) + ")")
    directory = LdapDirectory(settings)
    try:
        attributes = wanted_attributes(preset, rules, photo=False)
        directory.conn.search(settings.base_dn, flt, ldap3.SUBTREE, attributes=attributes, size_limit=2)
        found = [r for r in directory.conn.response or [] if r.get("type") == "searchResEntry"]
    except lx.LDAPSizeLimitExceededResult:
        return None
    except Exception as e:
        raise _classify(e) from None
    finally:
        directory.close()
    if len(found) != 1:
        return None
    person = to_person(Entry(found[0]["dn"], found[0]["raw_attributes"]), preset, rules)
    if not person.enabled:
        return None
    try:
        conn = _open(settings, person.dn, password)
    except (lx.LDAPInvalidCredentialsResult, lx.LDAPBindError):
        return None
    except Exception as e:
        raise _classify(e) from None
    conn.unbind()
    return person.directory_id
