"""The sans-IO directory core: entry mapping, nested groups and the sync plan (fake clock)."""

from __future__ import annotations

import uuid

import pytest

from vpbx.directory import Current, Entry, GroupWalk, Person, PlanConfig, make_plan, normalize_dn, to_person
from vpbx.directory.mapping import MAX_PHOTO_BYTES, field_rules, photo_bytes, photo_sha256, wanted_attributes
from vpbx.directory.presets import AD, OPENLDAP, Mapping
from vpbx.directory.report import DirectoryStats, from_plan

RULES = field_rules(AD, {})
NOW = 1_000_000.0


def config(**kw: object) -> PlanConfig:
    values: dict[str, object] = {
        "rules": RULES,
        "extension_range": (100, 199),
        "grace_period_s": 1000.0,
        "max_shrink_ratio": 0.5,
        "full": True,
    }
    values.update(kw)
    return PlanConfig(**values)  # type: ignore[arg-type]


def person(
    n: int, *, ext: str | None = None, enabled: bool = True, dn: str | None = None, **fields: str
) -> Person:
    base = {"display_name": f"User {n}", "email": None, "department": None, "position": None}
    base.update(fields)
    return Person(f"id-{n}", dn or f"uid=u{n},ou=People,dc=x", dict(base), ext, enabled)  # type: ignore[arg-type]


def user(
    n: int, ext: str, *, enabled: bool = True, disabled_at: float | None = None, **kw: object
) -> Current:
    fields = {
        "display_name": f"User {n}",
        "email": None,
        "department": None,
        "position": None,
        "phone": None,
        "mobile": None,
    }
    fields.update({k: str(v) for k, v in kw.items() if k != "roles"})
    return Current(
        id=n,
        extension=ext,
        directory_id=f"id-{n}",
        directory_dn=f"uid=u{n},ou=People,dc=x",
        enabled=enabled,
        disabled_at=disabled_at,
        fields=fields,
        roles=frozenset(kw.get("roles", ())),  # type: ignore[arg-type]
    )


def test_ad_entry_to_person() -> None:
    guid = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")
    entry = Entry(
        "CN=Jürgen Müller,OU=Staff,DC=corp",
        {
            "objectGUID": [guid.bytes_le],
            "DISPLAYNAME": ["Jürgen Müller".encode()],
            "title": [b"  Engineer "],
            "ipPhone": [b"20-01"],
            "userAccountControl": [b"514"],
            "sAMAccountName": [b"jmueller"],
            "mail": [b"j@corp"],
        },
    )
    p = to_person(entry, AD, RULES)
    assert p.directory_id == str(guid)  # the usual GUID text, not the raw byte order
    assert p.fields["display_name"] == "Jürgen Müller"
    assert p.fields["position"] == "Engineer"
    assert p.fields["department"] is None  # missing attribute
    assert p.extension == "2001"
    assert not p.enabled  # ACCOUNTDISABLE
    assert p.logins == ("jmueller", "j@corp")


def test_templates_bad_extensions_and_missing_id() -> None:
    rules = field_rules(AD, {"name": Mapping("{givenName} {sn}"), "extension": Mapping("telephoneNumber")})
    p = to_person(
        Entry(
            "uid=a",
            {"objectGUID": [b"x" * 16], "givenName": ["Zoë".encode()], "telephoneNumber": [b"call me"]},
        ),
        AD,
        rules,
    )
    assert p.fields["display_name"] == "Zoë"  # the missing sn leaves no stray blank
    assert p.extension is None and p.bad_extension == "call me"
    with pytest.raises(ValueError, match="no objectGUID"):
        to_person(Entry("uid=b", {"displayName": [b"B"]}), AD, RULES)
    ol = to_person(
        Entry("uid=c", {"entryUUID": [b"AbC-1"], "cn": [b"C"]}), OPENLDAP, field_rules(OPENLDAP, {})
    )
    assert ol.directory_id == "abc-1" and ol.fields["display_name"] == "C" and ol.extension is None


def test_wanted_attributes_skip_never_fields_and_photos_for_logins() -> None:
    rules = field_rules(AD, {"department": Mapping("department", "never")})
    names = {n.lower() for n in wanted_attributes(AD, rules)}
    assert {
        "objectguid",
        "displayname",
        "ipphone",
        "useraccountcontrol",
        "thumbnailphoto",
        "manager",
    } <= names
    assert "department" not in names
    assert "thumbnailphoto" not in {n.lower() for n in wanted_attributes(AD, rules, photo=False)}
    no_photo = field_rules(AD, {"photo": Mapping("thumbnailPhoto", "never")})
    assert "thumbnailphoto" not in {n.lower() for n in wanted_attributes(AD, no_photo)}


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(200)) + b"\xff\xd9"


def _ad_entry(photo: bytes | None = None, manager: str | None = None) -> Entry:
    attributes = {"objectGUID": [uuid.UUID(int=7).bytes_le], "displayName": [b"Seven"]}
    if photo is not None:
        attributes["thumbnailPhoto"] = [photo]
    if manager is not None:
        attributes["manager"] = [manager.encode()]
    return Entry("uid=seven,dc=x", attributes)


def test_photo_is_kept_as_its_hash_and_a_long_manager_dn_whole() -> None:
    manager = "uid=boss," + ",".join(f"ou=level{i}" for i in range(40)) + ",dc=x"  # > 255 characters
    p = to_person(_ad_entry(JPEG, manager), AD, RULES)
    assert p.fields["photo_sha256"] == photo_sha256(JPEG) and len(photo_sha256(JPEG)) == 64
    assert p.fields["manager_dn"] == manager and len(manager) > 255
    assert photo_bytes(_ad_entry(JPEG), RULES) == JPEG
    bare = to_person(_ad_entry(), AD, RULES)
    assert bare.fields["photo_sha256"] is None and bare.fields["manager_dn"] is None
    never = field_rules(AD, {"photo": Mapping("thumbnailPhoto", "never")})
    assert "photo_sha256" not in to_person(_ad_entry(JPEG), AD, never).fields
    assert photo_bytes(_ad_entry(JPEG), never) is None


def test_a_photo_over_the_cap_is_reported_and_the_stored_one_kept() -> None:
    huge = JPEG + bytes(MAX_PHOTO_BYTES)
    p = to_person(_ad_entry(huge), AD, RULES)
    assert "photo_sha256" not in p.fields and p.photo_too_large == len(huge)
    assert photo_bytes(_ad_entry(huge), RULES) is None
    stored = user(7, "107", photo_sha256="a" * 64)
    plan = make_plan(
        [stored],
        [
            Person(
                "id-7",
                "uid=u7,ou=People,dc=x",
                {"display_name": "User 7"},
                None,
                True,
                photo_too_large=len(huge),
            )
        ],
        roles_by_dn=None,
        config=config(),
        now=NOW,
    )
    assert plan.updates == [] and plan.errors == [
        f"uid=u7,ou=People,dc=x: photo of {len(huge)} bytes is over {MAX_PHOTO_BYTES}; not stored"
    ]
    report = from_plan(plan, started_at=NOW, finished_at=NOW, dry_run=False, mode="full")
    assert report.errors == plan.errors


@pytest.mark.parametrize(("rule", "changes"), [("always", True), ("create_only", False)])
def test_photo_and_manager_follow_the_rule(rule: str, changes: bool) -> None:
    rules = field_rules(
        AD,
        {"photo": Mapping("thumbnailPhoto", rule), "manager": Mapping("manager", rule)},  # type: ignore[arg-type]
    )
    stored = user(7, "107", photo_sha256="a" * 64, manager_dn="uid=old,dc=x")
    new = person(7, photo_sha256="b" * 64, manager_dn="uid=new,dc=x")
    plan = make_plan([stored], [new], roles_by_dn=None, config=config(rules=rules), now=NOW)
    if changes:
        assert [u.changes for u in plan.updates] == [{"photo_sha256": "b" * 64, "manager_dn": "uid=new,dc=x"}]
    else:
        assert plan.updates == []
    created = make_plan([], [new], roles_by_dn=None, config=config(rules=rules), now=NOW).creates
    assert created[0].person.fields["photo_sha256"] == "b" * 64  # both rules set it on create


def test_group_walk_nested_with_cycle_and_missing() -> None:
    users = ["uid=a,dc=x", "uid=b,dc=x", "uid=c,dc=x"]
    walk = GroupWalk({"admin": ["cn=Admins,dc=x"], "team_lead": ["cn=leads,dc=x", "cn=gone,dc=x"]}, users)
    graph = {
        "cn=admins,dc=x": ["uid=a, dc=x", "cn=inner,dc=x"],
        "cn=inner,dc=x": ["UID=B,DC=X", "cn=admins,dc=x"],  # a cycle
        "cn=leads,dc=x": ["uid=c,dc=x"],
    }
    reads = 0
    while batch := walk.pending():
        for dn in batch:
            reads += 1
            walk.feed(dn, graph.get(normalize_dn(dn)))
    assert reads == 4  # each group once, users never
    assert walk.roles_by_user() == {
        "uid=a,dc=x": {"admin"},
        "uid=b,dc=x": {"admin"},
        "uid=c,dc=x": {"team_lead"},
    }
    assert walk.missing == ["cn=gone,dc=x"]


def test_first_sync_allocates_and_reports_duplicates() -> None:
    manual = Current(99, "100", None, None, True, None, {})
    people = [person(1, ext="150"), person(2), person(3, ext="150"), person(4), person(5, enabled=False)]
    plan = make_plan([manual], people, roles_by_dn=None, config=config(), now=NOW, reserved=["101"])
    created = {c.person.directory_id: c.extension for c in plan.creates}
    # 100 is a manual user's, 101 a SIP account's: allocation skips them and the claimed 150
    assert created == {"id-1": "150", "id-2": "102", "id-4": "103"}
    assert len(plan.conflicts) == 1 and "uid=u3" in plan.conflicts[0]
    assert plan.skipped == 1  # disabled in the directory: not created
    assert not plan.disables and not plan.removals


def test_updates_rules_and_moves() -> None:
    rules = field_rules(AD, {"position": Mapping("title", "create_only")})
    current = [user(1, "150")]
    moved = person(1, ext="150", dn="uid=u1,ou=Moved,dc=x", display_name="New Name", position="Boss")
    plan = make_plan(current, [moved], roles_by_dn=None, config=config(rules=rules), now=NOW)
    (update,) = plan.updates
    assert update.changes == {"display_name": "New Name", "directory_dn": "uid=u1,ou=Moved,dc=x"}
    assert not plan.creates  # a rename or move is not delete + create


def test_extension_follows_directory_only_when_always() -> None:
    current = [user(1, "150"), user(2, "151")]
    people = [person(1, ext="160"), person(2, ext="150")]
    assert not make_plan(current, people, roles_by_dn=None, config=config(), now=NOW).updates
    rules = field_rules(AD, {"extension": Mapping("ipPhone", "always")})
    plan = make_plan(current, people, roles_by_dn=None, config=config(rules=rules), now=NOW)
    assert [(u.user_id, u.new_extension) for u in plan.updates] == [(1, "160")]
    assert len(plan.conflicts) == 1  # 2 asks for 150, which 1 still holds in the store


def test_disable_reenable_and_removal_after_grace() -> None:
    current = [user(1, "150"), user(2, "151"), user(3, "152", enabled=False, disabled_at=NOW - 10)] + [
        user(n, str(160 + n)) for n in range(4, 10)
    ]
    people = [person(1, enabled=False), person(3)] + [person(n) for n in range(4, 10)]
    plan = make_plan(current, people, roles_by_dn=None, config=config(), now=NOW)
    assert {c.user_id: c.reason for c in plan.disables} == {
        1: "disabled in the directory",
        2: "left the directory scope",
    }
    assert [c.user_id for c in plan.enables] == [3]
    assert not plan.removals  # grace period
    later = [
        user(1, "150", enabled=False, disabled_at=NOW),
        user(2, "151", enabled=False, disabled_at=NOW - 2000),
    ]
    plan = make_plan(later + current[2:], people, roles_by_dn=None, config=config(), now=NOW + 10)
    assert [c.user_id for c in plan.removals] == [2]  # 1 is still in its grace period
    incremental = make_plan(later, [], roles_by_dn=None, config=config(full=False), now=NOW + 5000)
    assert not incremental.removals and not incremental.abort  # only a full run removes


def test_safety_aborts() -> None:
    current = [user(n, str(150 + n)) for n in range(10)]
    empty = make_plan(current, [], roles_by_dn=None, config=config(), now=NOW)
    assert empty.abort is not None and "empty" in empty.abort and empty.changes == 0
    shrunk = make_plan(current, [person(n) for n in range(4)], roles_by_dn=None, config=config(), now=NOW)
    assert shrunk.abort is not None and "6 of 10" in shrunk.abort and shrunk.changes == 0
    ok = make_plan(current, [person(n) for n in range(5)], roles_by_dn=None, config=config(), now=NOW)
    assert ok.abort is None and len(ok.disables) == 5
    report = from_plan(shrunk, started_at=NOW, finished_at=NOW + 1, dry_run=False, mode="full")
    assert report.status == "aborted" and report.reason == "shrink"
    stats = DirectoryStats()
    stats.record(report)
    assert stats.failures["shrink"] == 1 and stats.last_success is None


def test_roles_follow_groups_and_keep_manual_grants() -> None:
    current = [user(1, "150", roles={"admin"}), user(2, "151")]
    roles = {
        normalize_dn("uid=u2,ou=People,dc=x"): {"team_lead"},
        normalize_dn("uid=u3,ou=People,dc=x"): {"admin"},
    }
    people = [person(1), person(2), person(3)]
    plan = make_plan(current, people, roles_by_dn=roles, config=config(), now=NOW)
    assert plan.revokes == [(1, "admin")]
    assert plan.grants == [(2, "team_lead")]
    (create,) = plan.creates
    assert create.roles == {"admin"}
    untouched = make_plan(current, people, roles_by_dn=None, config=config(), now=NOW)
    assert not untouched.grants and not untouched.revokes


def test_in_chain_results_and_dn_spelling() -> None:
    from vpbx.directory import roles_from_chain  # noqa: PLC0415

    roles = roles_from_chain(
        {"admin": ["CN=A, OU=X,DC=corp"], "employee": ["cn=a,ou=x,dc=corp", "cn=b,dc=corp"]}
    )
    assert roles == {"cn=a,ou=x,dc=corp": {"admin", "employee"}, "cn=b,dc=corp": {"employee"}}
    assert normalize_dn(" CN = Jürgen ,DC=Corp") == normalize_dn("cn=jürgen,dc=corp")
