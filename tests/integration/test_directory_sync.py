"""Directory sync against a real slapd (tests/integration/slapd.py): 1,200 AD-like users
with non-ASCII names, missing fields, disabled accounts, duplicate extensions, users
outside the base DN and nested groups; more than AD's 1,000-entry page limit, so only a
paged search sees them all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
import sqlalchemy as sa
from slapd import (
    GROUPS,
    OUTSIDE,
    PEOPLE,
    SERVICE_DN,
    SERVICE_PASSWORD,
    USER_PASSWORD,
    Population,
    Slapd,
    canonical_guid,
    people_ldif,
    user_dn,
)

from vpbx.directory import SyncReport
from vpbx.io.directory_sync import DirectoryError, directory_sync_running, ldap_login, run_directory_sync
from vpbx.metrics import Metrics
from vpbx.settings import DirectorySettings
from vpbx.sip.digest import compute_ha1
from vpbx.store import Database, sqlite_url
from vpbx.store import users as users_repo
from vpbx.store.runs import list_runs
from vpbx.store.schema import registrations, sip_accounts, users

COUNT = 1200
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Slapd, Population]]:
    """A directory the tests only read."""
    ldif, pop = people_ldif(COUNT)
    with Slapd.start(tmp_path_factory.mktemp("slapd"), ldif) as ldap:
        yield ldap, pop


@pytest.fixture
def own(tmp_path: Path) -> Iterator[tuple[Slapd, Population]]:
    """A directory a test may change."""
    ldif, pop = people_ldif(COUNT)
    with Slapd.start(tmp_path / "slapd", ldif) as ldap:
        yield ldap, pop


class Store:
    def __init__(self, path: Path) -> None:
        self.url = sqlite_url(path)

    def _run(self, work: Any) -> Any:
        async def main() -> Any:
            db = await Database.open(self.url)
            try:
                return await work(db)
            finally:
                await db.close()

        return asyncio.run(main())

    def sync(self, settings: DirectorySettings, **kw: Any) -> SyncReport:
        kw.setdefault("now", NOW)
        report: SyncReport = self._run(lambda db: run_directory_sync(db, settings, **kw))
        return report

    def users(self) -> dict[str, users_repo.User]:
        async def work(db: Database) -> dict[str, users_repo.User]:
            async with db.connect() as conn:
                return {u.directory_id or u.extension: u for u in await users_repo.list_users(conn)}

        result: dict[str, users_repo.User] = self._run(work)
        return result

    def rows(self) -> list[tuple[Any, ...]]:
        """Users and accounts as rows, to compare before/after."""

        async def work(db: Database) -> list[tuple[Any, ...]]:
            async with db.connect() as conn:
                a = [tuple(r) for r in await conn.execute(sa.select(users).order_by(users.c.id))]
                b = [
                    tuple(r) for r in await conn.execute(sa.select(sip_accounts).order_by(sip_accounts.c.id))
                ]
                return a + b

        result: list[tuple[Any, ...]] = self._run(work)
        return result

    def roles(self, extension: str) -> list[str]:
        async def work(db: Database) -> list[str]:
            async with db.connect() as conn:
                return await users_repo.roles_of(conn, extension)

        result: list[str] = self._run(work)
        return result

    def ha1(self, username: str) -> str | None:
        async def work(db: Database) -> str | None:
            async with db.connect() as conn:
                return await users_repo.lookup_ha1(conn, username, "MD5")

        return self._run(work)  # type: ignore[no-any-return]

    def secret(self, username: str) -> str:
        async def work(db: Database) -> str:
            async with db.connect() as conn:
                q = sa.select(sip_accounts.c.secret).where(sip_accounts.c.username == username)
                return str((await conn.execute(q)).scalar_one())

        return self._run(work)  # type: ignore[no-any-return]

    def register(self, username: str) -> None:
        async def work(db: Database) -> None:
            async with db.begin() as conn:
                await conn.execute(
                    sa.insert(registrations).values(
                        username=username,
                        contact=f"sip:{username}@192.0.2.1",
                        expires_at=NOW + 3600,
                        updated_at=NOW,
                    )
                )

        self._run(work)

    def registrations(self, username: str) -> int:
        async def work(db: Database) -> int:
            async with db.connect() as conn:
                q = (
                    sa.select(sa.func.count())
                    .select_from(registrations)
                    .where(registrations.c.username == username)
                )
                return int((await conn.execute(q)).scalar_one())

        return self._run(work)  # type: ignore[no-any-return]

    def runs(self) -> list[Any]:
        async def work(db: Database) -> list[Any]:
            async with db.connect() as conn:
                return await list_runs(conn)

        return self._run(work)  # type: ignore[no-any-return]


def expected_created(pop: Population) -> int:
    enabled = [n for n in range(pop.count) if n not in pop.disabled]
    losers = {b for _, b in pop.duplicate_pairs if b not in pop.disabled}
    return len(enabled) - len(losers)


def test_unpaged_search_is_cut_like_ad(shared: tuple[Slapd, Population]) -> None:
    ldap, _ = shared
    conn = ldap3.Connection(ldap.ldap_url, SERVICE_DN, SERVICE_PASSWORD, auto_bind=True)
    try:
        conn.search(PEOPLE, "(objectClass=user)", attributes=["uid"])
        assert conn.result["description"] == "sizeLimitExceeded"
        assert len(conn.response) == 1000
    finally:
        conn.unbind()


def test_first_sync(shared: tuple[Slapd, Population], tmp_path: Path) -> None:
    ldap, pop = shared
    store = Store(tmp_path / "vpbx.db")
    report = store.sync(ldap.settings())
    assert report.status == "ok", report.message
    assert report.seen == COUNT  # all pages; not the users outside the base DN
    assert report.created == expected_created(pop)
    assert len(report.conflicts) == len(pop.duplicate_pairs) > 0
    assert all("2000" in c and "not created" in c for c in report.conflicts)
    found = store.users()
    assert len(found) == report.created
    for n in pop.outside:
        assert canonical_guid(n) not in found
    for n in pop.disabled:
        assert canonical_guid(n) not in found
    assert found[canonical_guid(0)].extension == "2000"  # the duplicate's first holder keeps it
    for n, ext in pop.with_ipphone.items():
        if ext != "2000" and n not in pop.disabled:
            assert found[canonical_guid(n)].extension == ext
    allocated = [u for u in found.values() if u.extension.startswith("1") and len(u.extension) == 5]
    assert len(allocated) == len([n for n in range(COUNT) if n % 2 and n not in pop.disabled])
    assert all(10000 <= int(u.extension) <= 19999 for u in allocated)
    jurgen = found[canonical_guid(1)]
    assert jurgen.display_name == "Jürgen Müller 1"
    assert jurgen.email == "user00001@example.com"
    assert found[canonical_guid(4)].display_name == "李 伟 4"
    missing = next(n for n in sorted(pop.no_display_name) if n not in pop.disabled)
    assert found[canonical_guid(missing)].display_name == ""
    assert found[canonical_guid(35)].department is None  # 35 % 7 == 0: no department
    assert found[canonical_guid(12)].mobile == "+1 555 0900012"
    # a generated SIP account per employee, its password kept for provisioning
    ext = jurgen.extension
    secret = store.secret(ext)
    assert len(secret) >= 20
    assert store.ha1(ext) == compute_ha1(ext, "vpbx", secret, "MD5")
    # roles from groups, nested ones (and a cycle) included
    assert store.roles(found[canonical_guid(1)].extension) == ["admin"]
    assert store.roles(found[canonical_guid(13)].extension) == ["team_lead"]
    assert store.roles(found[canonical_guid(21)].extension) == []
    runs = store.runs()
    assert runs[0].status == "ok" and runs[0].created == report.created and not runs[0].dry_run
    # a second run with nothing changed changes nothing
    again = store.sync(ldap.settings(), now=NOW + 60)
    assert again.counts() == {**dict.fromkeys(again.counts(), 0), "conflicts": len(pop.duplicate_pairs)}


def test_dry_run_changes_nothing(shared: tuple[Slapd, Population], tmp_path: Path) -> None:
    ldap, pop = shared
    store = Store(tmp_path / "vpbx.db")
    report = store.sync(ldap.settings(), dry_run=True)
    assert report.status == "ok" and report.dry_run
    assert report.created == expected_created(pop)
    assert store.users() == {}
    (run,) = store.runs()
    assert run.dry_run and run.created == report.created


def test_ldaps_and_failover(shared: tuple[Slapd, Population], tmp_path: Path) -> None:
    ldap, _ = shared
    store = Store(tmp_path / "vpbx.db")
    dead = "ldap://127.0.0.1:9"  # discard port: nothing listens
    settings = ldap.settings(url=[dead, ldap.ldaps_url], start_tls=False)
    report = store.sync(settings)
    assert report.status == "ok", report.message
    assert report.seen == COUNT


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"bind_password": "wrong"}, "bind"),
        ({"ca_file": "ROGUE"}, "tls"),
        ({"ca_file": "ROGUE", "url": ["LDAPS"], "start_tls": False}, "tls"),
        ({"url": ["ldap://127.0.0.1:9"]}, "unreachable"),
        ({"root_filter": "(sAMAccountName=nobody-at-all)"}, "empty"),
        ({"root_filter": "(!(department=Sales))"}, "shrink"),  # a fifth of the users leave at once
        ({"root_filter": "(broken"}, "config"),
    ],
)
def test_failures_lose_nothing(
    shared: tuple[Slapd, Population], tmp_path: Path, overrides: dict[str, Any], reason: str
) -> None:
    ldap, _ = shared
    store = Store(tmp_path / "vpbx.db")
    assert store.sync(ldap.settings()).status == "ok"
    store.register(store.users()[canonical_guid(1)].extension)
    before = store.rows()
    if overrides.get("ca_file") == "ROGUE":
        overrides["ca_file"] = ldap.rogue_ca_file
    if overrides.get("url") == ["LDAPS"]:
        overrides["url"] = [ldap.ldaps_url]
    if reason == "shrink":
        overrides["max_shrink_ratio"] = 0.1
    report = store.sync(ldap.settings(**overrides), now=NOW + 10)
    assert report.status in {"failed", "aborted"}
    assert report.reason == reason, report.message
    assert report.message
    assert store.rows() == before
    assert store.registrations(store.users()[canonical_guid(1)].extension) == 1
    assert store.runs()[0].status == report.status


def test_ldap_login(shared: tuple[Slapd, Population]) -> None:
    ldap, _ = shared
    settings = ldap.settings()
    assert ldap_login(settings, "user00001", USER_PASSWORD) == canonical_guid(1)
    assert ldap_login(settings, "user00003@example.com", USER_PASSWORD) == canonical_guid(3)
    assert ldap_login(settings, "2002", USER_PASSWORD) == canonical_guid(4)  # the mapped extension
    assert ldap_login(settings, "user00001", "wrong") is None
    assert ldap_login(settings, "user00001", "") is None  # no unauthenticated bind
    assert ldap_login(settings, "nobody", USER_PASSWORD) is None
    assert ldap_login(settings, "user0000*", USER_PASSWORD) is None  # filter characters are escaped
    assert ldap_login(settings, "user00005", USER_PASSWORD) is None  # disabled in the directory
    with pytest.raises(DirectoryError):
        ldap_login(ldap.settings(url=["ldap://127.0.0.1:9"]), "user00001", USER_PASSWORD)


def test_openldap_preset(shared: tuple[Slapd, Population], tmp_path: Path) -> None:
    ldap, _ = shared
    store = Store(tmp_path / "vpbx.db")
    report = store.sync(ldap.settings(preset="openldap", user_filter=None, roles={}))
    assert report.status == "ok", report.message
    assert report.created == COUNT  # no disabled flag in plain OpenLDAP; extensions all allocated
    found = store.users()
    some = next(iter(found))
    assert len(some) == 36 and some.count("-") == 4  # entryUUID
    assert all(u.extension.startswith("1") for u in found.values())


def _modify(conn: ldap3.Connection, dn: str, **values: str | list[str]) -> None:
    conn.modify(
        dn, {k: [(ldap3.MODIFY_REPLACE, v if isinstance(v, list) else [v])] for k, v in values.items()}
    )


def test_lifecycle(own: tuple[Slapd, Population], tmp_path: Path) -> None:
    ldap, _ = own
    store = Store(tmp_path / "vpbx.db")
    settings = ldap.settings()
    assert store.sync(settings).status == "ok"
    first = store.users()
    ext = {n: first[canonical_guid(n)].extension for n in (20, 22, 24, 26, 28, 30, 32, 3)}
    store.register(ext[26])
    assert store.ha1(ext[26]) is not None

    admin = ldap.admin()
    _modify(admin, user_dn(20), displayName="Ренат Переименованный")
    admin.add(f"ou=Moved,{PEOPLE}", "organizationalUnit", {"ou": "Moved"})
    admin.modify_dn(user_dn(22), "uid=user00022", new_superior=f"ou=Moved,{PEOPLE}")
    _modify(admin, user_dn(24), department="Support")
    _modify(admin, user_dn(26), userAccountControl="514")
    admin.modify_dn(user_dn(28), "uid=user00028", new_superior=OUTSIDE)
    admin.delete(user_dn(30))
    admin.modify(f"cn=admins,{GROUPS}", {"member": [(ldap3.MODIFY_REPLACE, [user_dn(1), user_dn(32)])]})

    report = store.sync(settings, now=NOW + 100)
    assert report.status == "ok", report.message
    assert report.disabled == 3  # 26 (disabled), 28 (out of scope), 30 (deleted)
    assert report.removed == 0  # grace period
    now = store.users()
    assert now[canonical_guid(20)].display_name == "Ренат Переименованный"
    moved = now[canonical_guid(22)]
    assert moved.directory_dn == f"uid=user00022,ou=Moved,{PEOPLE}" and moved.extension == ext[22]
    assert now[canonical_guid(24)].department == "Support"
    for n in (26, 28, 30):
        assert not now[canonical_guid(n)].enabled
        assert now[canonical_guid(n)].disabled_at == NOW + 100
        assert store.ha1(ext[n]) is None  # its phone can no longer register
    assert store.registrations(ext[26]) == 0
    assert store.roles(ext[32]) == ["admin"]
    assert store.roles(ext[3]) == []

    # re-enabled and moved back into scope: same extensions
    _modify(admin, user_dn(26), userAccountControl="512")
    admin.modify_dn(f"uid=user00028,{OUTSIDE}", "uid=user00028", new_superior=PEOPLE)
    report = store.sync(settings, now=NOW + 200)
    assert report.enabled == 2
    now = store.users()
    for n in (26, 28):
        assert now[canonical_guid(n)].enabled and now[canonical_guid(n)].extension == ext[n]
        assert store.ha1(ext[n]) is not None
    assert not now[canonical_guid(30)].enabled

    # after the grace period the deleted user goes, with their SIP account
    report = store.sync(settings, now=NOW + 100 + 3600)
    assert report.removed == 1
    assert canonical_guid(30) not in store.users()
    assert store.ha1(ext[30]) is None

    # with the extension rule "always", a new ipPhone moves the extension and its account
    secret = store.secret(ext[20])
    _modify(admin, user_dn(20), ipPhone="2999")
    follow = ldap.settings(mapping={"extension": {"source": "ipPhone", "rule": "always"}})
    report = store.sync(follow, now=NOW + 5000)
    assert report.status == "ok" and report.updated >= 1, report.message
    assert store.users()[canonical_guid(20)].extension == "2999"
    assert store.ha1("2999") == compute_ha1("2999", "vpbx", secret, "MD5")  # same password, new username
    assert store.ha1(ext[20]) is None
    admin.unbind()


def test_incremental(own: tuple[Slapd, Population], tmp_path: Path) -> None:
    ldap, _ = own
    store = Store(tmp_path / "vpbx.db")
    settings = ldap.settings()
    assert store.sync(settings).status == "ok"
    admin = ldap.admin()
    time.sleep(1.1)  # modifyTimestamp has one-second resolution
    _modify(admin, user_dn(40), title="Mark")
    first = store.sync(settings, incremental=True, now=NOW + 10)
    assert first.mode == "incremental" and first.status == "ok"
    time.sleep(1.1)
    _modify(admin, user_dn(42), title="Changed")
    _modify(admin, user_dn(44), userAccountControl="514")
    report = store.sync(settings, incremental=True, now=NOW + 20)
    assert report.mode == "incremental"
    assert report.seen <= 4  # only what changed since the last mark (its second included)
    assert report.updated >= 1 and report.disabled == 1
    found = store.users()
    assert found[canonical_guid(42)].position == "Changed"
    assert not found[canonical_guid(44)].enabled
    admin.unbind()


def test_periodic_loop_and_metrics(shared: tuple[Slapd, Population], tmp_path: Path) -> None:
    ldap, pop = shared

    async def main() -> tuple[list[str], str]:
        db = await Database.open(sqlite_url(tmp_path / "vpbx.db"))
        modes: list[str] = []
        try:
            async with directory_sync_running(db, DirectorySettings()) as nothing:
                assert nothing is None  # no url: no periodic sync
            settings = ldap.settings(interval_s=0.2, full_interval_s=3600)
            async with directory_sync_running(db, settings) as loop:
                assert loop is not None
                metrics = Metrics()
                metrics.add_directory(loop)
                deadline = time.monotonic() + 20
                seen: SyncReport | None = None
                while len(modes) < 2 and time.monotonic() < deadline:
                    report = loop.last_report
                    if report is not None and report is not seen:
                        modes.append(report.mode)
                        seen = report
                    await asyncio.sleep(0.05)
                text = metrics.exposition().decode()
        finally:
            await db.close()
        return modes, text

    modes, text = asyncio.run(main())
    assert modes == ["full", "incremental"]  # a full reconcile first, then incremental runs
    assert f'vpbx_directory_changes_total{{kind="created"}} {float(expected_created(pop))}' in text
    assert "vpbx_directory_last_success_timestamp_seconds" in text


def test_directory_down_then_back(own: tuple[Slapd, Population], tmp_path: Path) -> None:
    ldap, _ = own
    store = Store(tmp_path / "vpbx.db")
    settings = ldap.settings()
    assert store.sync(settings).status == "ok"
    before = store.rows()
    ldap.stop()
    down = store.sync(settings, now=NOW + 10)
    assert down.status == "failed" and down.reason == "unreachable"
    assert store.rows() == before  # nobody disabled or removed while the directory is away
    ldap.restart()
    back = store.sync(settings, now=NOW + 20)
    assert back.status == "ok" and back.disabled == 0 and back.created == 0
