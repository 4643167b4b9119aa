"""The registrar (RFC 3261 §10.3) with a fake clock and real digest credentials from
our own DigestClient: challenge, authorized REGISTER, bindings, expiry bounds,
wildcard removal, ordering, and the security rules (no enumeration, bans, allowlists)."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import pytest

from vpbx.pbx import MemoryLocationStore, Registrar
from vpbx.security import AccountAllowlists, GuardConfig, SourceGuard
from vpbx.sip import DigestAuthenticator, DigestClient, Request, Response, compute_ha1s, parse_message

REALM = "pbx.example.com"
NOW = 1_700_000_000.0
SRC = ("192.0.2.10", 5060)
USERS = {"1001": "correct horse", "1002": "battery staple"}
HA1S = {u: compute_ha1s(u, REALM, pw) for u, pw in USERS.items()}


def lookup(user: str, algorithm: str) -> str | None:
    return HA1S.get(user, {}).get(algorithm)


def seeded(seed: int = 1) -> Callable[[int], bytes]:
    rnd = random.Random(seed)
    return lambda n: bytes(rnd.getrandbits(8) for _ in range(n))


class Phone:
    """A UA that registers: one Call-ID, CSeq counting up (§10.2.4), digest answers."""

    def __init__(self, user: str = "1001", password: str | None = None, call_id: str = "cid-1") -> None:
        self.user = user
        self.client = DigestClient(user, USERS.get(user, "x") if password is None else password)
        self.call_id = call_id
        self.cseq = 0

    def request(
        self, contacts: list[str] | None = None, expires: int | None = None, to_user: str | None = None
    ) -> Request:
        self.cseq += 1
        to = to_user or self.user
        headers = [
            ("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{self.cseq}-{self.call_id};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{to}@{REALM}>;tag=f1"),
            ("To", f"<sip:{to}@{REALM}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
        ]
        for c in [f"<sip:{self.user}@192.0.2.10:5060>"] if contacts is None else contacts:
            headers.append(("Contact", c))
        if expires is not None:
            headers.append(("Expires", str(expires)))
        request = Request("REGISTER", f"sip:{REALM}", headers)
        self.client.authorize(request)
        return request


@pytest.fixture
def store() -> MemoryLocationStore:
    return MemoryLocationStore()


@pytest.fixture
def guard() -> SourceGuard:
    return SourceGuard(GuardConfig(max_failures=3))


def make(store: MemoryLocationStore, guard: SourceGuard | None = None, **kw: object) -> Registrar:
    auth = DigestAuthenticator(REALM, b"s" * 32, rng=seeded())
    return Registrar(REALM, auth, lookup, store, guard, **kw)  # type: ignore[arg-type]


def register(
    reg: Registrar, phone: Phone, now: float = NOW, source: tuple[str, int] = SRC, **kw: object
) -> Response:
    """Send a REGISTER; on a 401, answer the challenge once (a fresh request, CSeq + 1)."""
    response = reg.handle(phone.request(**kw), source, now)  # type: ignore[arg-type]
    assert response is not None
    if response.status == 401 and phone.client.on_challenge(response):
        response = reg.handle(phone.request(**kw), source, now)  # type: ignore[arg-type]
        assert response is not None
    return response


def contacts_of(response: Response) -> dict[str, int]:
    out = {}
    for value in response.headers.values("contact"):
        m = re.fullmatch(r'(?:"[^"]*" )?<([^>]+)>.*;expires=(\d+)', value)
        assert m, value
        out[m.group(1)] = int(m.group(2))
    return out


def test_challenge_then_200_with_contacts_and_date(store: MemoryLocationStore) -> None:
    reg = make(store)
    phone = Phone()
    first = reg.handle(phone.request(), SRC, NOW)
    assert first is not None and first.status == 401
    algs = [re.search(r"algorithm=([\w-]+)", v).group(1) for v in first.headers.get_all("www-authenticate")]  # type: ignore[union-attr]
    assert algs == ["SHA-256", "MD5"]
    assert first.to.tag
    assert phone.client.on_challenge(first)
    ok = reg.handle(phone.request(expires=600), SRC, NOW)
    assert ok is not None and ok.status == 200
    assert contacts_of(ok) == {"sip:1001@192.0.2.10:5060": 600}
    assert parsedate_to_datetime(ok.headers.get("date") or "").timestamp() == NOW
    # The response is a valid message on the wire.
    assert isinstance(parse_message(ok.to_bytes()), Response)
    [binding] = store.bindings("1001", NOW)
    assert binding.source == SRC and binding.call_id == "cid-1" and binding.expires_at == NOW + 600
    assert reg.stats.accepted == 1 and reg.stats.challenges == 1


def test_md5_only_client_is_accepted(store: MemoryLocationStore) -> None:
    reg = make(store)
    phone = Phone()
    phone.client = DigestClient("1001", USERS["1001"], algorithms=["MD5"])
    assert register(reg, phone).status == 200


def test_unknown_user_gets_the_same_shaped_challenge(store: MemoryLocationStore) -> None:
    reg = make(store)
    known = reg.handle(Phone("1001").request(), SRC, NOW)
    unknown = reg.handle(Phone("9999").request(), SRC, NOW)
    assert known is not None and unknown is not None
    assert known.status == unknown.status == 401

    def shape(r: Response) -> list[str]:
        return [re.sub(r'nonce="[^"]*"', 'nonce="N"', v) for v in r.headers.get_all("www-authenticate")]

    assert shape(known) == shape(unknown)
    assert [n for n, _ in known.headers] == [n for n, _ in unknown.headers]
    # And a wrong answer from an unknown user looks like a wrong password.
    ghost = Phone("9999", password="guess")
    wrong = Phone("1001", password="guess")
    r1, r2 = register(reg, ghost), register(reg, wrong)
    assert r1.status == r2.status == 401
    assert shape(r1) == shape(r2)


def test_wrong_password_is_challenged_counted_and_banned(
    store: MemoryLocationStore, guard: SourceGuard
) -> None:
    reg = make(store, guard)
    for attempt in range(2):
        phone = Phone(password="wrong", call_id=f"bad-{attempt}")
        assert register(reg, phone).status == 401
    assert guard.auth_failures_total == 2 and not guard.is_banned(SRC[0], NOW)
    phone = Phone(password="wrong", call_id="bad-3")
    first = reg.handle(phone.request(), SRC, NOW)
    assert first is not None and phone.client.on_challenge(first)
    assert reg.handle(phone.request(), SRC, NOW) is None  # the third failure bans: dropped
    assert guard.is_banned(SRC[0], NOW)
    # A banned source gets nothing, even with the right password ...
    assert reg.handle(Phone().request(), SRC, NOW + 1) is None
    # ... while another address is served.
    assert register(reg, Phone(), source=("198.51.100.7", 5060)).status == 200
    assert store.bindings("1001", NOW) and reg.stats.auth_failures == 3


def test_success_resets_failure_count(store: MemoryLocationStore, guard: SourceGuard) -> None:
    reg = make(store, guard)
    for i in range(2):
        register(reg, Phone(password="wrong", call_id=f"b{i}"))
    assert register(reg, Phone()).status == 200
    for i in range(2):
        register(reg, Phone(password="wrong", call_id=f"c{i}"))
    assert not guard.is_banned(SRC[0], NOW)


def test_own_account_logins_do_not_reset_guesses_at_another(
    store: MemoryLocationStore, guard: SourceGuard
) -> None:
    """A source holding 1002's password guesses 1001's, logging in as 1002 in between."""
    reg = make(store, guard)
    for i in range(2):
        assert register(reg, Phone("1001", password=f"guess{i}", call_id=f"g{i}")).status == 401
        assert register(reg, Phone("1002", call_id=f"own{i}")).status == 200
    phone = Phone("1001", password="guess2", call_id="g2")
    first = reg.handle(phone.request(), SRC, NOW)
    assert first is not None and phone.client.on_challenge(first)
    assert reg.handle(phone.request(), SRC, NOW) is None  # third failure (max_failures=3): banned
    assert guard.is_banned(SRC[0], NOW)


def test_register_for_another_aor_is_forbidden(store: MemoryLocationStore) -> None:
    reg = make(store)
    response = register(reg, Phone("1001"), to_user="1002")
    assert response.status == 403
    assert store.bindings("1002", NOW) == []


def test_allowlist_outside_looks_like_a_wrong_password_inside_is_200(
    store: MemoryLocationStore, guard: SourceGuard
) -> None:
    reg = make(store, guard, allowlists=AccountAllowlists({"1001": ["10.0.0.0/8"]}))

    def shape(r: Response) -> tuple[int, list[str], list[str]]:
        challenges = [re.sub(r'nonce="[^"]*"', 'nonce="N"', v) for v in r.headers.get_all("www-authenticate")]
        return r.status, challenges, [n for n, _ in r.headers]

    # The right password from outside the list: the same answer as a wrong one (no
    # password oracle), no binding, and counted as a failed authentication.
    outside = register(reg, Phone(call_id="o1"))
    wrong = register(reg, Phone(password="wrong", call_id="w1"), source=("198.51.100.9", 5060))
    assert shape(outside) == shape(wrong) and outside.status == 401
    assert store.bindings("1001", NOW) == []
    assert reg.stats.source_refused == 1 and reg.stats.auth_failures == 2
    assert register(reg, Phone(), source=("10.1.2.3", 5060)).status == 200
    assert register(reg, Phone("1002"), source=("198.51.100.9", 5060)).status == 200  # no list: anywhere
    # Two more tries from outside (max_failures=3): the source is banned, even for 1002.
    assert register(reg, Phone(call_id="o2")).status == 401
    phone = Phone(call_id="o3")
    first = reg.handle(phone.request(), SRC, NOW)
    assert first is not None and phone.client.on_challenge(first)
    assert reg.handle(phone.request(), SRC, NOW) is None
    assert guard.is_banned(SRC[0], NOW) and reg.handle(Phone("1002").request(), SRC, NOW) is None


def test_too_brief_is_423_with_min_expires(store: MemoryLocationStore) -> None:
    reg = make(store, min_expires=60)
    response = register(reg, Phone(), expires=30)
    assert response.status == 423
    assert response.headers.get("min-expires") == "60"
    assert store.bindings("1001", NOW) == []
    # a per-contact value too
    response = register(reg, Phone(call_id="x"), contacts=["<sip:1001@192.0.2.10>;expires=10"])
    assert response.status == 423


def test_too_long_is_clamped_and_default_applies(store: MemoryLocationStore) -> None:
    reg = make(store, max_expires=3600, default_expires=1800)
    assert contacts_of(register(reg, Phone(), expires=86400)) == {"sip:1001@192.0.2.10:5060": 3600}
    phone = Phone("1002")
    assert contacts_of(register(reg, phone)) == {"sip:1002@192.0.2.10:5060": 1800}


def test_several_contacts_with_own_expires(store: MemoryLocationStore) -> None:
    reg = make(store)
    response = register(
        reg,
        Phone(),
        contacts=[
            "<sip:1001@192.0.2.10:5060>;expires=120",
            '"Desk" <sip:1001@192.0.2.11:5062;transport=tcp>;q=0.5',
            "<sip:1001@192.0.2.12>, <sip:1001@192.0.2.13>;expires=0",
        ],
        expires=900,
    )
    assert response.status == 200
    assert contacts_of(response) == {
        "sip:1001@192.0.2.10:5060": 120,
        "sip:1001@192.0.2.11:5062;transport=tcp": 900,
        "sip:1001@192.0.2.12": 900,
    }
    assert any(";q=0.5" in v for v in response.headers.values("contact"))
    assert len(store.bindings("1001", NOW)) == 3


def test_refresh_query_and_removal(store: MemoryLocationStore) -> None:
    reg = make(store)
    phone = Phone()
    register(reg, phone, expires=300)
    # the client reuses its credentials (nc counts up): no new challenge
    refreshed = reg.handle(phone.request(expires=600), SRC, NOW + 200)
    assert refreshed is not None and refreshed.status == 200
    assert contacts_of(refreshed) == {"sip:1001@192.0.2.10:5060": 600}
    # a query (no Contact) lists without changing
    query = reg.handle(phone.request(contacts=[]), SRC, NOW + 250)
    assert query is not None and contacts_of(query) == {"sip:1001@192.0.2.10:5060": 550}
    # after the nonce's lifetime, the client is told stale=true and answers again
    removed = register(reg, phone, NOW + 400, contacts=["<sip:1001@192.0.2.10:5060>;expires=0"])
    assert removed.status == 200 and contacts_of(removed) == {}
    assert store.bindings("1001", NOW + 400) == []


def test_uri_equality_matches_existing_binding(store: MemoryLocationStore) -> None:
    reg = make(store)
    phone = Phone()
    register(reg, phone, contacts=["<sip:1001@Phone.Example.com;transport=UDP>"])
    again = reg.handle(phone.request(contacts=["<sip:1001@phone.example.com;transport=udp>"]), SRC, NOW)
    assert again is not None and again.status == 200
    assert len(store.bindings("1001", NOW)) == 1


def test_expiry_removes_bindings(store: MemoryLocationStore) -> None:
    reg = make(store)
    phone = Phone()
    register(reg, phone, expires=60)
    assert store.bindings("1001", NOW + 59.5)
    assert store.bindings("1001", NOW + 60) == []
    query = reg.handle(phone.request(contacts=[]), SRC, NOW + 61)
    assert query is not None and contacts_of(query) == {}
    gone = store.expire(NOW + 61)
    assert [b.aor for b in gone] == ["1001"] and store.count() == 0


def test_wildcard_removes_all_with_expires_zero_only(store: MemoryLocationStore) -> None:
    reg = make(store)
    phone = Phone()
    register(reg, phone, contacts=["<sip:1001@192.0.2.10>", "<sip:1001@192.0.2.11>"])
    assert len(store.bindings("1001", NOW)) == 2
    bad = reg.handle(phone.request(contacts=["*"], expires=60), SRC, NOW)
    assert bad is not None and bad.status == 400
    bad = reg.handle(phone.request(contacts=["*"]), SRC, NOW)
    assert bad is not None and bad.status == 400
    assert len(store.bindings("1001", NOW)) == 2
    ok = reg.handle(phone.request(contacts=["*"], expires=0), SRC, NOW)
    assert ok is not None and ok.status == 200 and contacts_of(ok) == {}
    assert store.bindings("1001", NOW) == []


def test_out_of_order_cseq_changes_nothing(store: MemoryLocationStore) -> None:
    reg = make(store)
    phone = Phone()
    register(reg, phone, expires=600)  # CSeq 2 stored
    # A delayed REGISTER (CSeq 3) arrives after a newer one (CSeq 4). Each carries
    # credentials for its own nonce, so that nonce-count replay protection does not
    # refuse it first: the ordering rule of §10.3 step 7 has to.
    other = DigestClient("1001", USERS["1001"])
    challenge = reg.handle(Phone(call_id="elsewhere").request(), SRC, NOW)
    assert challenge is not None and other.on_challenge(challenge)
    late = phone.request(expires=0)  # CSeq 3
    other.authorize(late)
    newer = phone.request(expires=900)  # CSeq 4
    assert reg.handle(newer, SRC, NOW).status == 200  # type: ignore[union-attr]
    stale = reg.handle(late, SRC, NOW)
    assert stale is not None and stale.status == 500
    assert contacts_of(reg.handle(phone.request(contacts=[]), SRC, NOW)) == {  # type: ignore[arg-type]
        "sip:1001@192.0.2.10:5060": 900
    }
    assert reg.stats.out_of_order == 1
    # Another Call-ID (the phone rebooted) with a low CSeq replaces the binding.
    reboot = Phone(call_id="cid-2")
    assert contacts_of(register(reg, reboot, expires=300)) == {"sip:1001@192.0.2.10:5060": 300}


def test_too_many_contacts(store: MemoryLocationStore) -> None:
    reg = make(store, max_bindings=2)
    response = register(reg, Phone(), contacts=[f"<sip:1001@192.0.2.{i}>" for i in range(1, 4)])
    assert response.status == 403 and store.bindings("1001", NOW) == []


def test_domains_and_require(store: MemoryLocationStore) -> None:
    reg = make(store, domains=frozenset({"other.example"}))
    response = reg.handle(Phone().request(), SRC, NOW)
    assert response is not None and response.status == 404
    reg = make(store)
    request = Phone().request()
    request.headers.add("Require", "gruu")
    response = reg.handle(request, SRC, NOW)
    assert response is not None and response.status == 420
    assert response.headers.get("unsupported") == "gruu"


def test_broken_contact_gets_400_not_an_exception(store: MemoryLocationStore) -> None:
    reg = make(store)
    response = register(reg, Phone(), contacts=["<sip:1001@192.0.2.10>;expires=abc"])
    assert response.status == 400


def test_registrar_validates_bounds() -> None:
    with pytest.raises(ValueError):
        make(MemoryLocationStore(), min_expires=100, default_expires=50)
