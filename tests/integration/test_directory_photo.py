"""Directory photos and managers against a real slapd (tests/integration/slapd.py): every
tenth user has a thumbnailPhoto, two in ten a manager. A sync stores the photo bytes and
the manager's DN; a changed photo is rewritten, an unchanged one is not; a photo over the
cap is reported and the stored one kept; the per-field rules `never` and `create_only`
leave them alone; the API resolves the manager to a vpbx user."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest
import sqlalchemy as sa
from slapd import Population, Slapd, canonical_guid, has_photo, manager_of, people_ldif, photo_of, user_dn

from vpbx.api.queries import get_user_view
from vpbx.api.rbac import Principal
from vpbx.directory import SyncReport
from vpbx.directory.mapping import MAX_PHOTO_BYTES
from vpbx.io.directory_sync import run_directory_sync
from vpbx.io.ldap_client import PhotoSpool
from vpbx.settings import DirectorySettings
from vpbx.store import Database, sqlite_url
from vpbx.store.schema import users

COUNT = 120
NOW = 1_800_000_000.0
Row = tuple[str, bytes | None, str | None, str | None, float]  # extension, photo, sha, manager, updated


@pytest.fixture
def own(tmp_path: Path) -> Iterator[tuple[Slapd, Population]]:
    ldif, pop = people_ldif(COUNT)
    with Slapd.start(tmp_path / "slapd", ldif) as ldap:
        yield ldap, pop


def _run(url: str, work: Any) -> Any:
    async def main() -> Any:
        db = await Database.open(url)
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(main())


def sync(url: str, settings: DirectorySettings, now: float = NOW) -> SyncReport:
    report: SyncReport = _run(url, lambda db: run_directory_sync(db, settings, now=now))
    assert report.status == "ok", report.message
    return report


def stored(url: str) -> dict[str, Row]:
    """directory id -> what the users table holds for the photo and the manager."""

    async def work(db: Database) -> dict[str, Row]:
        cols = (
            users.c.extension,
            users.c.photo,
            users.c.photo_sha256,
            users.c.manager_dn,
            users.c.updated_at,
        )
        async with db.connect() as conn:
            rows = await conn.execute(sa.select(users.c.directory_id, *cols))
            return {str(r[0]): (r[1], None if r[2] is None else bytes(r[2]), r[3], r[4], r[5]) for r in rows}

    result: dict[str, Row] = _run(url, work)
    return result


def _replace(conn: ldap3.Connection, dn: str, attribute: str, values: list[Any]) -> None:
    op = ldap3.MODIFY_REPLACE if values else ldap3.MODIFY_DELETE
    assert conn.modify(dn, {attribute: [(op, values)]}), conn.result


def test_photos_and_managers_are_stored_and_follow_changes(
    own: tuple[Slapd, Population], tmp_path: Path
) -> None:
    ldap, _pop = own
    url = sqlite_url(tmp_path / "vpbx.db")
    settings = ldap.settings(roles={})
    sync(url, settings)
    first = stored(url)
    checked = 0
    for n in range(COUNT):
        row = first.get(canonical_guid(n))
        if row is None:  # AD-disabled or a losing duplicate extension
            continue
        _ext, photo, sha, manager, _ = row
        want = photo_of(n) if has_photo(n) else None
        assert photo == want, n
        assert sha == (None if want is None else hashlib.sha256(want).hexdigest())
        boss = manager_of(n)
        assert manager == (None if boss is None else user_dn(boss)), n
        checked += 1
    assert checked > COUNT - 5 and sum(1 for r in first.values() if r[1] is not None) == COUNT // 10

    # the API resolves the manager's DN to that vpbx user
    admin = Principal(token_id=0, roles=frozenset({"admin"}))

    async def view(db: Database, ext: str) -> dict[str, Any] | None:
        async with db.connect() as conn:
            return await get_user_view(conn, admin, sa.true(), ext)

    boss_ext = first[canonical_guid(1)][0]
    doc = _run(url, lambda db: view(db, first[canonical_guid(3)][0]))
    assert doc is not None and doc["manager"]["extension"] == boss_ext
    assert doc["manager"]["name"].endswith(" 1")
    assert _run(url, lambda db: view(db, boss_ext))["manager"] is None

    # nothing changed: no user is touched (photos are compared by their hash)
    again = sync(url, settings, now=NOW + 10)
    assert again.updated == 0 and stored(url) == first

    new_photo = photo_of(1, 512, version=1)
    huge = photo_of(21, MAX_PHOTO_BYTES + 1)
    admin_conn = ldap.admin()
    try:
        _replace(admin_conn, user_dn(1), "thumbnailPhoto", [new_photo])
        _replace(admin_conn, user_dn(11), "thumbnailPhoto", [])  # photo removed
        _replace(admin_conn, user_dn(21), "thumbnailPhoto", [huge])
        _replace(admin_conn, user_dn(3), "manager", [user_dn(11)])
    finally:
        admin_conn.unbind()
    report = sync(url, settings, now=NOW + 20)
    assert report.updated == 3  # users 1, 11 and 3; not 21
    assert f"{user_dn(21)}: photo of {len(huge)} bytes is over {MAX_PHOTO_BYTES}; not stored" in report.errors
    after = stored(url)
    assert after[canonical_guid(1)][1:3] == (new_photo, hashlib.sha256(new_photo).hexdigest())
    assert after[canonical_guid(11)][1:3] == (None, None)
    assert after[canonical_guid(21)] == first[canonical_guid(21)]  # kept, untouched
    assert after[canonical_guid(3)][3] == user_dn(11)
    changed = {canonical_guid(n) for n in (1, 11, 3)}
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in first.items() if k not in changed
    }


def test_rules_never_and_create_only_leave_photo_and_manager(
    own: tuple[Slapd, Population], tmp_path: Path
) -> None:
    ldap, _pop = own
    url = sqlite_url(tmp_path / "vpbx.db")
    never = {
        "photo": {"source": "thumbnailPhoto", "rule": "never"},
        "manager": {"source": "manager", "rule": "never"},
    }
    # `never` from the start: nothing is read or stored
    sync(url, ldap.settings(roles={}, mapping=never))
    assert all(r[1] is None and r[3] is None for r in stored(url).values())

    url = sqlite_url(tmp_path / "second.db")
    sync(url, ldap.settings(roles={}))
    first = stored(url)
    admin_conn = ldap.admin()
    try:
        _replace(admin_conn, user_dn(1), "thumbnailPhoto", [photo_of(1, 300, version=2)])
        _replace(admin_conn, user_dn(3), "manager", [user_dn(31)])
    finally:
        admin_conn.unbind()
    create_only = {k: {**v, "rule": "create_only"} for k, v in never.items()}
    for mapping in (never, create_only):
        report = sync(url, ldap.settings(roles={}, mapping=mapping), now=NOW + 10)
        assert report.updated == 0, mapping
        assert stored(url) == first
    report = sync(url, ldap.settings(roles={}), now=NOW + 20)  # `always` (the preset's rule)
    assert report.updated == 2
    assert stored(url)[canonical_guid(1)][1] == photo_of(1, 300, version=2)
    assert stored(url)[canonical_guid(3)][3] == user_dn(31)


def test_openldap_preset_reads_jpeg_photo(own: tuple[Slapd, Population], tmp_path: Path) -> None:
    ldap, _ = own
    photo = photo_of(4, 1000)
    admin_conn = ldap.admin()
    try:
        _replace(admin_conn, user_dn(4), "jpegPhoto", [photo])
    finally:
        admin_conn.unbind()
    url = sqlite_url(tmp_path / "vpbx.db")
    sync(url, ldap.settings(preset="openldap", user_filter=None, roles={}))
    with_photo = [r for r in stored(url).values() if r[1] is not None]
    assert [r[1] for r in with_photo] == [photo]  # thumbnailPhoto is not the OpenLDAP preset's photo
    assert sum(1 for r in stored(url).values() if r[3] is not None) == 2 * COUNT // 10


def test_photo_spool_keeps_each_photo_once_on_disk() -> None:
    spool = PhotoSpool()
    a, b = photo_of(1, 5000), photo_of(2, 700)
    sha_a, sha_b = hashlib.sha256(a).hexdigest(), hashlib.sha256(b).hexdigest()
    for sha, data in ((sha_a, a), (sha_b, b), (sha_a, a)):  # the same photo twice: kept once
        spool.put(sha, data)
    assert (len(spool), spool.size) == (2, len(a) + len(b))
    assert (spool.get(sha_b), spool.get(sha_a)) == (b, a)
    with pytest.raises(KeyError):
        spool.get("0" * 64)
    spool.close()
    assert len(spool) == 0
