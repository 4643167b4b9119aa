"""A real OpenLDAP slapd for the directory tests and the benchmark.

Started in a temporary folder on 127.0.0.1 free ports: ldap:// (StartTLS) and ldaps://,
with a test CA made at start (openssl CLI) and a server certificate for 127.0.0.1 and
localhost. The schema adds the Active Directory attributes the sync reads (sAMAccountName,
objectGUID, userAccountControl, ipPhone, department, thumbnailPhoto) as an AD-like ``user``
object class. Like AD, a search by the service account stops at 1,000 entries unless it is
paged (RFC 2696). Data is loaded with slapadd before the server starts (fast for 50,000).

    with Slapd.start(tmp_path, people_ldif(1200)) as ldap:
        ldap.settings(...)          # DirectorySettings pointing at it
        ldap.admin()                # an ldap3 connection as the root DN, to change entries
"""

from __future__ import annotations

import base64
import contextlib
import random
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3

from vpbx.settings import DirectorySettings

SUFFIX = "dc=example,dc=com"
PEOPLE = f"ou=People,{SUFFIX}"
GROUPS = f"ou=Groups,{SUFFIX}"
OUTSIDE = f"ou=Contractors,{SUFFIX}"
SERVICE_DN = f"cn=pbx-sync,ou=Service,{SUFFIX}"
SERVICE_PASSWORD = "sync-secret"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "admin-secret"
USER_PASSWORD = "Pässword-1"  # users with a password (the first ten) have this one
SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
START_TIMEOUT_S = 15.0

AD_SCHEMA = """
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.721 NAME 'ipPhone'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.2.840.113556.1.2.141 NAME 'department'
  EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 2.16.840.1.113730.3.1.35 NAME 'thumbnailPhoto'
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP inetOrgPerson STRUCTURAL
  MAY ( sAMAccountName $ objectGUID $ userAccountControl $ ipPhone $ department $ thumbnailPhoto ) )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group' SUP groupOfNames STRUCTURAL )
"""

SLAPD_CONF = """
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include {dir}/ad.schema
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key

database mdb
maxsize 4294967296
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {dir}/db
index objectClass,uid,sAMAccountName,mail,ipPhone,entryUUID eq
# like AD's MaxPageSize: 1,000 entries per search unless paged
sizelimit size.soft=1000 size.hard=1000 size.prtotal=unlimited
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
"""

NAMES = [
    ("Анна", "Смирнова"),
    ("Jürgen", "Müller"),
    ("José", "Núñez"),
    ("Zoë", "O'Brien"),
    ("李", "伟"),
    ("Ólafur", "Þórsson"),
    ("Łukasz", "Żółć"),
    ("Søren", "Ærø"),
    ("Ivan", "Petrov"),
    ("Fatma", "Yılmaz"),  # noqa: RUF001 (a real Turkish name)
]
DEPARTMENTS = ["Sales", "Support", "Бухгалтерия", "Marketing", "R&D"]


def guid_of(n: int) -> bytes:
    """A deterministic objectGUID (16 bytes) for user n."""
    return uuid.uuid5(uuid.NAMESPACE_DNS, f"user{n}.example.com").bytes_le


def canonical_guid(n: int) -> str:
    return str(uuid.UUID(bytes_le=guid_of(n)))


def _b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def user_dn(n: int, ou: str = PEOPLE) -> str:
    return f"uid=user{n:05d},{ou}"


def photo_of(n: int, size: int = 256, version: int = 0) -> bytes:
    """JPEG-like bytes for user n (a JFIF header, `size` bytes in all): the start of image
    and APP0 markers (ITU-T T.81 Annex B, JFIF 1.02), a deterministic body, the end marker."""
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00"
    seed = f"photo {n} v{version} ".encode()
    body = (seed * (size // len(seed) + 1))[: max(size - len(head) - 2, 0)]
    return head + body + b"\xff\xd9"


def has_photo(n: int) -> bool:
    return n % 10 == 1


def manager_of(n: int) -> int | None:
    """Users x2 and x3 of every ten report to user x1 (some of whom are AD-disabled)."""
    return n - n % 10 + 1 if n % 10 in (2, 3) else None


@dataclass
class Population:
    """What people_ldif generated, for the tests' expectations."""

    count: int
    disabled: set[int] = field(default_factory=set)
    duplicate_pairs: list[tuple[int, int]] = field(default_factory=list)
    with_ipphone: dict[int, str] = field(default_factory=dict)
    outside: list[int] = field(default_factory=list)
    no_display_name: set[int] = field(default_factory=set)
    team_leads: set[int] = field(default_factory=set)  # via a nested group
    admins: set[int] = field(default_factory=set)
    photo_size: int = 256  # users with has_photo(n) have photo_of(n, photo_size)

    @property
    def enabled_in_scope(self) -> int:
        return self.count - len(self.disabled)


def person_entry(n: int, *, ou: str = PEOPLE, pop: Population | None = None, photo_size: int = 256) -> str:
    first, last = NAMES[n % len(NAMES)]
    lines = [
        f"dn: {user_dn(n, ou)}",
        "objectClass: user",
        f"uid: user{n:05d}",
        f"sAMAccountName: user{n:05d}",
        f"cn:: {_b64(f'{first} {last} {n}')}",
        f"sn:: {_b64(last)}",
        f"givenName:: {_b64(first)}",
        f"objectGUID:: {_b64(guid_of(n))}",
        f"mail: user{n:05d}@example.com",
        f"userAccountControl: {514 if n % 97 == 5 else 512}",
    ]
    if n % 13 != 7:
        lines.append(f"displayName:: {_b64(f'{first} {last} {n}')}")
    elif pop is not None:
        pop.no_display_name.add(n)
    if n % 5 != 0:
        lines.append(f"title:: {_b64('Engineer' if n % 2 else 'Менеджер')}")
    if n % 7 != 0:
        lines.append(f"department:: {_b64(DEPARTMENTS[n % len(DEPARTMENTS)])}")
    if n % 3 == 0:
        lines.append(f"telephoneNumber: +1 555 01{n:05d}")
    if n % 4 == 0:
        lines.append(f"mobile: +1 555 09{n:05d}")
    if n % 2 == 0:
        ext = str(2000 + n // 2) if n % 101 != 2 else "2000"  # n % 101 == 2: a duplicate of user 0
        lines.append(f"ipPhone: {ext}")
        if pop is not None:
            pop.with_ipphone[n] = ext
    if n < 10:
        lines.append(f"userPassword:: {_b64(USER_PASSWORD)}")
    if has_photo(n):
        lines.append(f"thumbnailPhoto:: {_b64(photo_of(n, photo_size))}")
    if (boss := manager_of(n)) is not None:
        lines.append(f"manager: {user_dn(boss, ou)}")
    if pop is not None and n % 97 == 5:
        pop.disabled.add(n)
    return "\n".join(lines) + "\n"


def people_ldif(count: int, *, outside: int = 5, photo_size: int = 256) -> tuple[str, Population]:
    """An LDIF of `count` users under ou=People (ids 0..count-1), `outside` more under
    ou=Contractors (outside the base DN), and groups: admins (direct), team-leads (nested:
    team-leads <- leads-sales <- a few users), all-staff (every 10th user). Every tenth user
    has a thumbnailPhoto of `photo_size` bytes; two in ten have a manager."""
    pop = Population(count, photo_size=photo_size)
    parts = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n",
        *(
            f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n"
            for ou in ("People", "Groups", "Contractors", "Service")
        ),
        f"dn: {SERVICE_DN}\nobjectClass: person\ncn: pbx-sync\nsn: sync\nuserPassword: {SERVICE_PASSWORD}\n",
    ]
    parts.extend(person_entry(n, pop=pop, photo_size=photo_size) for n in range(count))
    parts.extend(person_entry(count + 1000 + i, ou=OUTSIDE, photo_size=photo_size) for i in range(outside))
    pop.outside = [count + 1000 + i for i in range(outside)]
    pop.duplicate_pairs = [(0, n) for n in range(count) if n % 2 == 0 and n % 101 == 2]
    pop.admins = {1, 3}
    pop.team_leads = {11, 13, 15}
    groups = {
        "admins": [user_dn(n) for n in sorted(pop.admins)],
        "leads-sales": [user_dn(n) for n in sorted(pop.team_leads)],
        "team-leads": [f"cn=leads-sales,{GROUPS}", f"cn=team-leads-loop,{GROUPS}"],
        "team-leads-loop": [f"cn=team-leads,{GROUPS}"],  # a cycle the walk must survive
    }
    for name, members in groups.items():
        body = "".join(f"member: {m}\n" for m in members)
        parts.append(f"dn: cn={name},{GROUPS}\nobjectClass: group\ncn: {name}\n{body}")
    return "\n".join(parts), pop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> None:
    """{name}.pem / {name}.key: a self-signed CA."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN=vpbx test {name}", "-keyout", f"{name}.key", "-out", f"{name}.pem",
        cwd=folder,
    )  # fmt: skip


def make_server_cert(folder: Path) -> None:
    """server.pem / server.key signed by ca.pem, for 127.0.0.1 and localhost."""
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr", cwd=folder,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=folder,
    )  # fmt: skip


@dataclass
class Slapd:
    folder: Path
    port: int
    tls_port: int
    proc: subprocess.Popen[bytes] | None = None
    log_file: Any = None

    @property
    def ldap_url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def rogue_ca_file(self) -> Path:
        return self.folder / "rogue.pem"

    def settings(self, **overrides: Any) -> DirectorySettings:
        values: dict[str, Any] = {
            "url": [self.ldap_url],
            "start_tls": True,
            "ca_file": self.ca_file,
            "bind_dn": SERVICE_DN,
            "bind_password": SERVICE_PASSWORD,
            "base_dn": PEOPLE,
            "preset": "ad",
            # AD's default also excludes objectClass=computer, which this schema does not define
            "user_filter": "(objectClass=user)",
            "extension_range": "10000-19999",
            "max_shrink_ratio": 0.2,
            "grace_period_s": 3600,
            "roles": {
                "admin": f"cn=admins,{GROUPS}",
                "team_lead": [f"cn=team-leads,{GROUPS}"],
            },
            "timeout_s": 10,
            "connect_timeout_s": 3,
        }
        values.update(overrides)
        return DirectorySettings(**values)

    def admin(self) -> ldap3.Connection:
        return ldap3.Connection(
            ldap3.Server(self.ldap_url, get_info=ldap3.NONE),
            ROOT_DN,
            ROOT_PASSWORD,
            auto_bind=True,
            raise_exceptions=True,
        )

    @classmethod
    @contextlib.contextmanager
    def start(cls, folder: Path, ldif: str) -> Iterator[Slapd]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "db").mkdir()
        make_ca(folder, "ca")
        make_ca(folder, "rogue")
        make_server_cert(folder)
        (folder / "ad.schema").write_text(AD_SCHEMA)
        conf = folder / "slapd.conf"
        conf.write_text(
            SLAPD_CONF.format(dir=folder, suffix=SUFFIX, root_dn=ROOT_DN, root_password=ROOT_PASSWORD)
        )
        (folder / "data.ldif").write_text(ldif, encoding="utf-8")
        subprocess.run(
            [SLAPADD, "-q", "-f", str(conf), "-l", str(folder / "data.ldif")],
            check=True,
            capture_output=True,
            timeout=300,
        )
        ldap = cls(folder, _free_port(), _free_port())
        try:
            ldap.restart()
            yield ldap
        finally:
            ldap.stop()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                log = (self.folder / "slapd.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"slapd exited with {self.proc.returncode}: {log}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise TimeoutError("slapd did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def restart(self) -> None:
        """Start (again, after stop()) on the same ports."""
        self.log_file = (self.folder / "slapd.log").open("ab")
        self.proc = subprocess.Popen(
            [
                SLAPD,
                "-d",
                "0",
                "-f",
                str(self.folder / "slapd.conf"),
                "-h",
                f"{self.ldap_url}/ {self.ldaps_url}/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log_file,
        )
        self.wait_ready()


def random_names(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(NAMES)) for _ in range(count)]
