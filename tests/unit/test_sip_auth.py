"""Server-side digest: known vectors (RFC 7616 §3.9.1, RFC 2617 §3.5, RFC 2069 §2.4),
challenge shape (RFC 8760 §2.3), end-to-end with our client, and every way a request
can fail: wrong password, realm, URI, nonce, nonce-count, qop, algorithm, opaque."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable

import pytest

from vpbx.sip import Request, Response, parse_auth, parse_message, parse_uri
from vpbx.sip import auth as auth_module
from vpbx.sip.auth import AuthResult, DigestAuthenticator
from vpbx.sip.auth_client import DigestClient
from vpbx.sip.auth_nonce import NonceCounts
from vpbx.sip.digest import (
    ALGORITHMS,
    compute_ha1,
    compute_ha1s,
    compute_response,
)

REALM = "pbx.example.com"
SECRET = b"k" * 32
NOW = 1_700_000_000.0
USERS = {"1001": "correct horse", "1002": "battery staple"}
HA1S = {user: compute_ha1s(user, REALM, pw) for user, pw in USERS.items()}


def lookup(user: str, algorithm: str) -> str | None:
    return HA1S.get(user, {}).get(algorithm)


def seeded(seed: int = 1) -> Callable[[int], bytes]:
    rnd = random.Random(seed)
    return lambda n: bytes(rnd.getrandbits(8) for _ in range(n))


def register(
    user: str = "1001", uri: str = f"sip:{REALM}", body: bytes = b"", method: str = "REGISTER"
) -> Request:
    return Request(
        method,
        uri,
        [
            ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{user}@{REALM}>;tag=f1"),
            ("To", f"<sip:{user}@{REALM}>"),
            ("Call-ID", "reg-1@192.0.2.10"),
            ("CSeq", f"1 {method}"),
            ("Contact", f"<sip:{user}@192.0.2.10:5060>"),
        ],
        body,
    )


def server(**kw: object) -> DigestAuthenticator:
    kw.setdefault("rng", seeded())
    return DigestAuthenticator(REALM, SECRET, **kw)  # type: ignore[arg-type]


def answered(
    auth: DigestAuthenticator,
    request: Request,
    password: str | None = None,
    *,
    user: str = "1001",
    now: float = NOW,
    proxy: bool = False,
    **client_kw: object,
) -> tuple[Request, DigestClient]:
    """`request` with credentials answering a fresh challenge."""
    client = DigestClient(user, USERS.get(user, "x") if password is None else password, **client_kw)  # type: ignore[arg-type]
    assert client.on_challenge(auth.challenge(request, now, proxy=proxy))
    client.authorize(request)
    return request, client


def set_param(request: Request, name: str, value: str, *, header: str = "Authorization") -> None:
    """Rewrite one parameter of the credentials, keeping everything else as sent."""
    creds = parse_auth(request.headers.get(header) or "")
    creds.params[name] = value
    request.headers.set(header, str(creds))


# -- known vectors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_examples(algorithm: str, expected: str) -> None:
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    response = compute_response(
        ha1,
        algorithm=algorithm,
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert response == expected


def test_rfc2617_section_3_5_example() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    response = compute_response(
        ha1,
        algorithm="MD5",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_rfc2069_example_without_qop() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "CircleOfLife")
    response = compute_response(
        ha1, algorithm="MD5", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", method="GET", uri="/dir/index.html"
    )
    assert response == "1949323746fe6a43ef61f9606e7febea"


def test_ha1_per_algorithm() -> None:
    ha1s = compute_ha1s("Mufasa", "http-auth@example.org", "Circle of Life")
    assert ha1s["MD5"] == "3d78807defe7de2157e2b0b6573a855f"
    assert len(ha1s["SHA-256"]) == 64
    assert set(ha1s) == {a for a in ALGORITHMS if not a.endswith("-sess")}
    assert compute_ha1("Mufasa", "r", "p", "SHA-256-sess") == compute_ha1("Mufasa", "r", "p", "SHA-256")


# -- challenges -------------------------------------------------------------------------------


def test_challenge_is_401_with_sha256_first_then_md5() -> None:
    request = register()
    response = server().challenge(request, NOW)
    assert (response.status, response.reason) == (401, "Unauthorized")
    values = response.headers.get_all("WWW-Authenticate")
    assert len(values) == 2
    first, second = (parse_auth(v) for v in values)
    assert first.params["algorithm"] == "SHA-256"  # RFC 8760 §2.3: most preferred on top
    assert second.params["algorithm"] == "MD5"
    for challenge in (first, second):
        assert challenge.is_digest
        assert challenge.params["realm"] == REALM
        assert challenge.params["qop"] == "auth"
        assert "stale" not in challenge.params
        assert challenge.params["opaque"]
    assert first.params["nonce"] == second.params["nonce"]
    assert 'qop="auth"' in values[0]  # qop-options is a quoted list (RFC 3261 §25.1)
    # the response copies what §8.2.6 says and adds a To tag
    assert response.headers.get_all("Via") == request.headers.get_all("Via")
    assert response.call_id == request.call_id and response.cseq == request.cseq
    assert response.to.tag is not None and response.from_.tag == "f1"
    reparsed = parse_message(response.to_bytes())
    assert isinstance(reparsed, Response) and reparsed.www_authenticate == (first, second)


def test_proxy_challenge_is_407() -> None:
    response = server().challenge(register(method="INVITE", uri=f"sip:1002@{REALM}"), NOW, proxy=True)
    assert response.status == 407
    assert "WWW-Authenticate" not in response.headers
    assert [a.params["algorithm"] for a in response.proxy_authenticate] == ["SHA-256", "MD5"]


def test_challenge_with_stale_and_other_algorithm_lists() -> None:
    auth = server(algorithms=("SHA-512-256", "SHA-256", "MD5"), qops=("auth", "auth-int"))
    values = auth.challenge_values(NOW, stale=True)
    assert [parse_auth(v).params["algorithm"] for v in values] == ["SHA-512-256", "SHA-256", "MD5"]
    assert all(parse_auth(v).params["stale"] == "true" for v in values)
    assert all(parse_auth(v).params["qop"] == "auth,auth-int" for v in values)


def test_every_challenge_has_a_new_nonce() -> None:
    auth = DigestAuthenticator(REALM, SECRET)
    nonces = {parse_auth(auth.challenge_values(NOW)[0]).params["nonce"] for _ in range(200)}
    assert len(nonces) == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithms": ("SHA-1",)},
        {"algorithms": ()},
        {"qops": ("auth-conf",)},
        {"qops": ()},
        {"nonce_ttl": 0},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, SECRET, **kwargs)  # type: ignore[arg-type]


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        DigestAuthenticator(REALM, b"short")


# -- end to end -------------------------------------------------------------------------------


@pytest.mark.parametrize("proxy", [False, True])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_challenge_client_verify_round_trip(algorithm: str, proxy: bool) -> None:
    auth = server(algorithms=(algorithm,))
    request, _ = answered(auth, register(), proxy=proxy)
    header = "Proxy-Authorization" if proxy else "Authorization"
    assert parse_auth(request.headers.get(header) or "").params["algorithm"] == algorithm
    result = auth.verify(request, lookup, NOW + 1, proxy=proxy)
    assert result == AuthResult(True, "ok", "1001", algorithm)
    assert not result.is_failure and not result.stale


def test_client_picks_sha256_from_the_default_challenge() -> None:
    auth = server()
    request, _ = answered(auth, register())
    assert auth.verify(request, lookup, NOW + 1) == AuthResult(True, "ok", "1001", "SHA-256")


def test_md5_only_client_still_authenticates() -> None:
    auth = server()
    request, _ = answered(auth, register(), algorithms=("MD5",))
    assert auth.verify(request, lookup, NOW + 1) == AuthResult(True, "ok", "1001", "MD5")


def test_credentials_reused_with_rising_nonce_count() -> None:
    auth = server()
    request, client = answered(auth, register())
    for i in range(5):
        if i:
            client.authorize(request)
        assert auth.verify(request, lookup, NOW + i).ok
    assert "nc=00000005" in (request.headers.get("Authorization") or "")


def test_invite_through_the_proxy_path() -> None:
    auth = server()
    invite = register(method="INVITE", uri=f"sip:1002@{REALM}", body=b"v=0\r\n")
    request, _ = answered(auth, invite, proxy=True)
    assert auth.verify(request, lookup, NOW, proxy=True).ok
    assert auth.verify(request, lookup, NOW).reason == "missing"  # no Authorization field


def test_auth_int_covers_the_body() -> None:
    auth = server(qops=("auth-int",))
    request, _ = answered(auth, register(body=b"hello"))
    assert "qop=auth-int" in (request.headers.get("Authorization") or "")
    good = auth.verify(request, lookup, NOW)
    assert good.ok
    request, _ = answered(auth, register(body=b"hello"))
    request.body = b"hellO"
    assert auth.verify(request, lookup, NOW).reason == "bad-response"


def test_no_qop_credentials_only_when_allowed() -> None:
    strict = server()
    legacy = server(allow_no_qop=True)
    for auth, expected in ((strict, "bad-qop"), (legacy, "ok")):
        request = register()
        challenge = auth.challenge(request, NOW)
        values = challenge.headers.get_all("WWW-Authenticate")
        challenge.headers.remove("WWW-Authenticate")
        for value in values:
            challenge.headers.add("WWW-Authenticate", value.replace(', qop="auth"', ""))
        client = DigestClient("1001", USERS["1001"])
        assert client.on_challenge(challenge)
        client.authorize(request)
        assert "nc=" not in (request.headers.get("Authorization") or "")
        assert auth.verify(request, lookup, NOW).reason == expected


# -- failures ---------------------------------------------------------------------------------


def test_missing_credentials() -> None:
    result = server().verify(register(), lookup, NOW)
    assert result == AuthResult(False, "missing")
    assert not result.is_failure


def test_other_schemes_are_not_credentials() -> None:
    request = register()
    request.headers.add("Authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    assert server().verify(request, lookup, NOW).reason == "missing"


def test_wrong_password() -> None:
    auth = server()
    request, _ = answered(auth, register(), "wrong")
    result = auth.verify(request, lookup, NOW)
    assert result == AuthResult(False, "bad-response", "1001", "SHA-256")
    assert result.is_failure and not result.stale


def test_wrong_realm() -> None:
    auth = server()
    other = DigestAuthenticator("other.example.com", SECRET, rng=seeded())
    request, _ = answered(other, register())
    assert auth.verify(request, lookup, NOW).reason == "bad-realm"
    # Our realm written over theirs: the nonce is bound to its realm.
    set_param(request, "realm", REALM)
    set_param(request, "opaque", auth.opaque)
    assert auth.verify(request, lookup, NOW).reason == "bad-nonce"


def test_credentials_for_several_realms() -> None:
    auth = server()
    request, _ = answered(auth, register())
    ours = request.headers.get("Authorization") or ""
    request.headers.set("Authorization", ours.replace(f'realm="{REALM}"', 'realm="upstream"'))
    request.headers.add("Authorization", ours)
    assert auth.verify(request, lookup, NOW).ok


def test_wrong_uri() -> None:
    auth = server()
    request, _ = answered(auth, register())
    request.uri = parse_uri("sip:elsewhere.example.com")
    assert auth.verify(request, lookup, NOW).reason == "bad-uri"


def test_equivalent_uri_text_is_accepted() -> None:
    """RFC 3261 §19.1.4: host and parameter values compare case-insensitively, so a
    client that writes the Request-URI differently (and hashes what it wrote) passes."""
    auth = server()
    request, _ = answered(auth, register(uri=f"sip:{REALM};transport=udp"))
    creds = parse_auth(request.headers.get("Authorization") or "")
    digest_uri = f"sip:{REALM.upper()};transport=UDP"
    creds.params["uri"] = digest_uri
    creds.params["response"] = compute_response(
        HA1S["1001"]["SHA-256"],
        algorithm="SHA-256",
        nonce=creds.params["nonce"],
        method="REGISTER",
        uri=digest_uri,
        qop="auth",
        nc=creds.params["nc"],
        cnonce=creds.params["cnonce"],
    )
    request.headers.set("Authorization", str(creds))
    assert auth.verify(request, lookup, NOW).ok
    set_param(request, "uri", f"sip:{REALM};transport=tcp")
    assert auth.verify(request, lookup, NOW).reason == "bad-uri"


def test_replayed_nonce_count() -> None:
    auth = server()
    request, client = answered(auth, register())
    assert auth.verify(request, lookup, NOW).ok
    assert auth.verify(request, lookup, NOW).reason == "replay"
    client.authorize(request)  # nc=2
    client.authorize(request)  # nc=3
    assert auth.verify(request, lookup, NOW).ok
    # an older count with a correct digest is a replay too
    state = next(iter(client.states.values()))
    state.nc = 1  # the next one is nc=2, below 3
    client.authorize(request)
    result = auth.verify(request, lookup, NOW)
    assert result.reason == "replay" and result.is_failure


def test_expired_nonce_gets_stale_then_the_client_retries_alone() -> None:
    auth = server(nonce_ttl=300)
    request, client = answered(auth, register())
    later = NOW + 301
    result = auth.verify(request, lookup, later)
    assert result == AuthResult(False, "stale", "1001", "SHA-256")
    assert result.stale and not result.is_failure
    challenge = auth.challenge(request, later, stale=result.stale)
    assert all(a.params["stale"] == "true" for a in challenge.www_authenticate)
    assert client.on_challenge(challenge)  # no new password needed
    client.authorize(request)
    assert auth.verify(request, lookup, later).ok


def test_expired_nonce_with_wrong_password_is_not_stale() -> None:
    auth = server()
    request, _ = answered(auth, register(), "wrong")
    assert auth.verify(request, lookup, NOW + 1000).reason == "bad-response"


def test_tampered_nonce() -> None:
    auth = server()
    request, _ = answered(auth, register())
    nonce = parse_auth(request.headers.get("Authorization") or "").params["nonce"]
    for bad in (
        nonce[:-1] + ("A" if nonce[-1] != "A" else "B"),  # MAC bit flipped
        "B" + nonce[1:] if nonce[0] != "B" else "C" + nonce[1:],  # issue time moved
        nonce[:-1],
        nonce + "A",
        "",
        "not a nonce at all",
    ):
        set_param(request, "nonce", bad)
        assert auth.verify(request, lookup, NOW).reason == "bad-nonce", bad


def test_nonce_from_another_secret_or_the_future() -> None:
    request, _ = answered(DigestAuthenticator(REALM, b"x" * 32), register())
    assert server().verify(request, lookup, NOW).reason == "bad-nonce"
    auth = server()
    request, _ = answered(auth, register(), now=NOW + 3600)
    assert auth.verify(request, lookup, NOW).reason == "bad-nonce"
    request, _ = answered(auth, register(), now=NOW + 10)  # within the allowed skew
    assert auth.verify(request, lookup, NOW).ok


def test_secret_rotation_accepts_old_nonces() -> None:
    old = DigestAuthenticator(REALM, b"o" * 32)
    new = DigestAuthenticator(REALM, b"n" * 32, previous_secrets=[b"o" * 32])
    request, _ = answered(old, register())
    assert new.verify(request, lookup, NOW).ok


def test_any_node_of_a_cluster_verifies() -> None:
    node_a = DigestAuthenticator(REALM, SECRET)
    node_b = DigestAuthenticator(REALM, SECRET)
    request, _ = answered(node_a, register())
    assert node_b.verify(request, lookup, NOW + 5).ok


@pytest.mark.parametrize(
    ("param", "value", "reason"),
    [
        ("algorithm", "SHA-1", "bad-algorithm"),
        ("algorithm", "MD5", "bad-algorithm"),  # only SHA-256 offered below
        ("qop", "auth-int", "bad-qop"),
        ("qop", "auth-conf", "bad-qop"),
        ("nc", "zz000001", "malformed"),
        ("nc", "1", "malformed"),
        ("cnonce", "", "malformed"),
        ("response", "abc", "malformed"),
        ("response", "g" * 64, "malformed"),
        ("opaque", "someone else's", "bad-opaque"),
        ("userhash", "true", "malformed"),
        ("username", "1002", "bad-response"),
        ("username", "nobody", "unknown-user"),
    ],
)
def test_credential_parameters_checked(param: str, value: str, reason: str) -> None:
    auth = server(algorithms=("SHA-256",))
    request, _ = answered(auth, register())
    set_param(request, param, value)
    result = auth.verify(request, lookup, NOW)
    assert result.reason == reason and not result.ok
    assert result.is_failure


@pytest.mark.parametrize("param", ["username", "realm", "nonce", "uri", "response", "nc", "cnonce"])
def test_missing_parameter_is_malformed(param: str) -> None:
    auth = server()
    request, _ = answered(auth, register())
    creds = parse_auth(request.headers.get("Authorization") or "")
    del creds.params[param]
    request.headers.set("Authorization", str(creds))
    assert auth.verify(request, lookup, NOW).reason == "malformed"


def test_missing_qop_with_nc_is_rejected_even_when_legacy_is_allowed() -> None:
    auth = server(allow_no_qop=True)
    request, _ = answered(auth, register())
    creds = parse_auth(request.headers.get("Authorization") or "")
    del creds.params["qop"]
    request.headers.set("Authorization", str(creds))
    assert auth.verify(request, lookup, NOW).reason == "bad-qop"


@pytest.mark.parametrize(
    "value",
    [
        "Digest",
        "Digest ,,,",
        'Digest username="1001", username="1002"',
        'Digest username="unterminated',
        "Digest realm=pbx.example.com garbage",
        "\x01\x02",
    ],
)
def test_garbage_credentials_are_malformed(value: str) -> None:
    request = register()
    request.headers.add("Authorization", value)
    assert server().verify(request, lookup, NOW).reason == "malformed"


def test_uppercase_hex_response_and_algorithm_case() -> None:
    auth = server()
    request, _ = answered(auth, register())
    creds = parse_auth(request.headers.get("Authorization") or "")
    set_param(request, "response", creds.params["response"].upper())
    set_param(request, "algorithm", "sha-256")
    assert auth.verify(request, lookup, NOW).ok


def test_username_in_extended_notation() -> None:
    user, password = "Jäsøn Doe", "Secret, or not?"
    ha1s = {user: compute_ha1s(user, REALM, password)}
    auth = server()
    request, _ = answered(auth, register(), password, user=user)
    creds = parse_auth(request.headers.get("Authorization") or "")
    del creds.params["username"]
    creds.params["username*"] = "UTF-8''J%C3%A4s%C3%B8n%20Doe"
    request.headers.set("Authorization", str(creds))
    result = auth.verify(request, lambda u, a: ha1s.get(u, {}).get(a), NOW)
    assert result.ok and result.username == user
    creds.params["username*"] = "UTF-8''%FF"
    request.headers.set("Authorization", str(creds))
    assert auth.verify(request, lookup, NOW).reason == "malformed"


def test_lookup_is_asked_for_the_base_algorithm() -> None:
    asked: list[tuple[str, str]] = []

    def spy(user: str, algorithm: str) -> str | None:
        asked.append((user, algorithm))
        return lookup(user, algorithm)

    auth = server(algorithms=("SHA-256-sess",))
    request, _ = answered(auth, register())
    assert auth.verify(request, spy, NOW).ok
    assert asked == [("1001", "SHA-256")]


def test_a_stored_value_that_is_no_ha1_counts_as_no_user() -> None:
    auth = server()
    request, _ = answered(auth, register())
    assert auth.verify(request, lambda u, a: "not-hex", NOW).reason == "unknown-user"


def test_verify_leaves_the_request_alone() -> None:
    auth = server()
    request, _ = answered(auth, register())
    before = request.to_bytes()
    auth.verify(request, lookup, NOW)
    assert request.to_bytes() == before


# -- no user enumeration -----------------------------------------------------------------------


def _shape(response: Response) -> list[object]:
    """The response with nonce values and the To tag blanked out."""
    out: list[object] = [response.status, response.reason]
    for name, value in response.headers:
        blanked = re.sub(r'nonce="[^"]*"', 'nonce="*"', value)
        out.append((name, re.sub(r";tag=[^;>]*$", ";tag=*", blanked) if name == "To" else blanked))
    return out


def test_unknown_user_gets_the_same_challenge_as_a_known_one() -> None:
    auth = server()

    def same_parties(request: Request) -> Request:
        # what differs between the two requests is only the username they authenticate as
        request.headers.set("From", f"<sip:someone@{REALM}>;tag=f1")
        request.headers.set("To", f"<sip:someone@{REALM}>")
        return request

    known_req, unknown_req = same_parties(register("1001")), same_parties(register("4711"))
    # first leg: no credentials yet
    known, unknown = auth.challenge(known_req, NOW), auth.challenge(unknown_req, NOW)
    assert _shape(known) == _shape(unknown)
    assert len(known.to_bytes()) == len(unknown.to_bytes())
    # second leg: wrong password for a known user vs. anything for an unknown one
    for now in (NOW, NOW + 1000):  # fresh and expired nonces: same stale logic
        k_req, _ = answered(auth, same_parties(register("1001")), "guess", now=NOW)
        u_req, _ = answered(auth, same_parties(register("4711")), "guess", user="4711", now=NOW)
        k_res, u_res = auth.verify(k_req, lookup, now), auth.verify(u_req, lookup, now)
        assert (k_res.ok, k_res.stale, k_res.is_failure) == (u_res.ok, u_res.stale, u_res.is_failure)
        assert _shape(auth.challenge(k_req, now, k_res.stale)) == _shape(
            auth.challenge(u_req, now, u_res.stale)
        )
    for field in range(len(known.headers)):
        assert list(known.headers)[field][0] == list(unknown.headers)[field][0]


def test_unknown_user_costs_the_same_hash_work(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = compute_response

    def counting(ha1: str, **kw: object) -> str:
        calls.append(f"{len(ha1)}:{kw['algorithm']}")
        return real(ha1, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(auth_module, "compute_response", counting)
    auth = server()
    known_req, _ = answered(auth, register("1001"), "guess")
    unknown_req, _ = answered(auth, register("4711"), "guess", user="4711")
    auth.verify(known_req, lookup, NOW)
    known_calls = list(calls)
    calls.clear()
    auth.verify(unknown_req, lookup, NOW)
    assert calls == known_calls == ["64:SHA-256"]


def test_unknown_user_takes_the_same_checks_of_the_ha1(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored HA1's well-formedness check runs on the dummy too (no timing difference)."""
    checked: list[int] = []
    real = auth_module._HEX_RE

    class Counting:
        def fullmatch(self, text: str) -> re.Match[str] | None:
            checked.append(len(text))
            return real.fullmatch(text)

    auth = server()
    known_req, _ = answered(auth, register("1001"), "guess")
    unknown_req, _ = answered(auth, register("4711"), "guess", user="4711")
    monkeypatch.setattr(auth_module, "_HEX_RE", Counting())
    assert auth.verify(known_req, lookup, NOW).reason == "bad-response"
    known_checks = list(checked)
    checked.clear()
    assert auth.verify(unknown_req, lookup, NOW).reason == "unknown-user"
    assert checked == known_checks and 64 in checked


# -- nonce-count table ------------------------------------------------------------------------


def test_nonce_count_table_is_bounded_and_forgetting_is_safe() -> None:
    counts = NonceCounts(capacity=10)
    auth = server(counts=counts)
    clients = []
    for i in range(30):
        request, client = answered(auth, register(), now=NOW + i)
        assert auth.verify(request, lookup, NOW + i).ok
        clients.append((request, client))
        assert len(counts) <= 10
    assert counts.evicted == 20
    # an evicted nonce may have been used: a correct digest gets stale=true, not ok
    request, client = clients[0]
    client.authorize(request)
    result = auth.verify(request, lookup, NOW + 40)
    assert result.reason == "stale"
    assert client.on_challenge(auth.challenge(request, NOW + 40, stale=True))
    client.authorize(request)
    assert auth.verify(request, lookup, NOW + 40).ok
    # the newest ones are still tracked
    request, client = clients[-1]
    client.authorize(request)
    assert auth.verify(request, lookup, NOW + 40).ok


def test_prune_drops_expired_nonces_only() -> None:
    auth = server(nonce_ttl=60)
    for i in range(5):
        request, _ = answered(auth, register(), now=NOW + i * 30)
        assert auth.verify(request, lookup, NOW + i * 30).ok
    assert len(auth.counts) == 5
    assert auth.prune(NOW + 125) == 3  # issued at +0, +30, +60 are older than 60 s
    assert len(auth.counts) == 2


def test_many_verifications_keep_distinct_nonces() -> None:
    auth = server()
    results = []
    for i in itertools.islice(itertools.count(), 50):
        request, _ = answered(auth, register(), now=NOW + i / 10)
        results.append(auth.verify(request, lookup, NOW + i / 10).ok)
    assert all(results)
