"""Client-side digest (RFC 3261 §22.2-§22.3, RFC 8760 §2.4): algorithm choice, nonce
reuse with rising nc, stale=true retries, giving up on wrong credentials, proxies."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vpbx.sip import Request, Response, parse_auth
from vpbx.sip.auth import DigestAuthenticator
from vpbx.sip.auth_client import DigestClient
from vpbx.sip.digest import compute_ha1, compute_response

REALM = "provider.example.net"
NOW = 1_700_000_000.0


def request(method: str = "REGISTER", uri: str = f"sip:{REALM}", body: bytes = b"") -> Request:
    return Request(
        method,
        uri,
        [
            ("Via", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-t1"),
            ("From", f"<sip:trunk@{REALM}>;tag=t1"),
            ("To", f"<sip:trunk@{REALM}>"),
            ("Call-ID", "trunk-1@198.51.100.7"),
            ("CSeq", f"1 {method}"),
        ],
        body,
    )


def challenge(*values: str, status: int = 401) -> Response:
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    return Response(status, headers=[(name, v) for v in values])


def digest(realm: str = REALM, algorithm: str | None = None, nonce: str = "n0nce", **extra: str) -> str:
    parts = [f'Digest realm="{realm}"', f'nonce="{nonce}"', 'qop="auth"']
    if algorithm is not None:
        parts.append(f"algorithm={algorithm}")
    parts += [f"{k}={v}" for k, v in extra.items()]
    return ", ".join(parts)


def sent(req: Request, header: str = "Authorization") -> dict[str, str]:
    return parse_auth(req.headers.get(header) or "").params


def counter_rng() -> Callable[[int], bytes]:
    state = {"n": 0}

    def rng(n: int) -> bytes:
        state["n"] += 1
        return bytes([state["n"] % 256]) * n

    return rng


def test_strongest_algorithm_wins_whatever_the_order() -> None:
    client = DigestClient("trunk", "pw")
    assert client.on_challenge(challenge(digest(algorithm="MD5"), digest(algorithm="SHA-256")))
    req = request()
    client.authorize(req)
    assert sent(req)["algorithm"] == "SHA-256"


def test_md5_when_nothing_better_and_when_algorithm_is_absent() -> None:
    for value in (digest(algorithm="MD5"), digest()):
        client = DigestClient("trunk", "pw")
        assert client.on_challenge(challenge(value))
        req = request()
        client.authorize(req)
        assert sent(req)["algorithm"] == "MD5"


def test_client_policy_can_refuse_md5() -> None:
    client = DigestClient("trunk", "pw", algorithms=("SHA-256",))
    assert not client.on_challenge(challenge(digest(algorithm="MD5")))
    assert client.error == "no-usable-challenge"


def test_credentials_compute_the_right_response() -> None:
    client = DigestClient("trunk", "pw", rng=lambda n: b"\x01" * n)
    assert client.on_challenge(challenge(digest(algorithm="SHA-256", opaque='"op"')))
    req = request()
    client.authorize(req)
    p = sent(req)
    assert p["username"] == "trunk" and p["realm"] == REALM and p["uri"] == f"sip:{REALM}"
    assert (p["qop"], p["nc"], p["cnonce"], p["opaque"]) == ("auth", "00000001", "01" * 12, "op")
    expected = compute_response(
        compute_ha1("trunk", REALM, "pw", "SHA-256"),
        algorithm="SHA-256",
        nonce="n0nce",
        method="REGISTER",
        uri=f"sip:{REALM}",
        qop="auth",
        nc="00000001",
        cnonce="01" * 12,
    )
    assert p["response"] == expected
    raw = req.headers.get("Authorization") or ""
    assert "qop=auth," in raw and "nc=00000001" in raw and "algorithm=SHA-256" in raw  # unquoted tokens


def test_nonce_reuse_counts_up_with_fresh_cnonces() -> None:
    client = DigestClient("trunk", "pw", rng=counter_rng())
    assert client.on_challenge(challenge(digest(algorithm="SHA-256")))
    seen = []
    for _ in range(3):
        req = request()
        client.authorize(req)
        seen.append((sent(req)["nc"], sent(req)["cnonce"]))
    assert [nc for nc, _ in seen] == ["00000001", "00000002", "00000003"]
    assert len({cnonce for _, cnonce in seen}) == 3


def test_second_fresh_challenge_means_wrong_password() -> None:
    client = DigestClient("trunk", "wrong")
    assert client.on_challenge(challenge(digest(nonce="a")))
    client.authorize(request())
    assert not client.on_challenge(challenge(digest(nonce="b")))
    assert client.error == "rejected"
    # a new attempt later starts afresh instead of looping now
    assert client.on_challenge(challenge(digest(nonce="c")))


def test_rechallenge_of_a_reused_nonce_is_answered() -> None:
    """After nc=1 passed, a later request with nc=2 may meet a server that restarted
    with a new secret: its plain challenge is not a verdict on the password."""
    client = DigestClient("trunk", "pw")
    assert client.on_challenge(challenge(digest(nonce="a")))
    client.authorize(request())
    client.authorize(request())  # nc=2
    assert client.on_challenge(challenge(digest(nonce="b")))
    assert client.error is None


def test_stale_retries_without_asking_then_gives_up() -> None:
    client = DigestClient("trunk", "pw", max_stale=2)
    assert client.on_challenge(challenge(digest(nonce="a")))
    client.authorize(request())
    assert client.on_challenge(challenge(digest(nonce="b", stale="true")))
    client.authorize(request())
    assert client.on_challenge(challenge(digest(nonce="c", stale="TRUE")))
    client.authorize(request())
    assert not client.on_challenge(challenge(digest(nonce="d", stale="true")))
    assert client.error == "too-many-stale"


def test_not_a_challenge_and_unusable_challenges() -> None:
    client = DigestClient("trunk", "pw")
    assert not client.on_challenge(Response(403))
    assert str(client.error) == "not-a-challenge"
    for values in (
        (),
        ('Basic realm="x"',),
        ("Digest garbage without equals",),
        ('Digest realm="x"',),  # no nonce
        ('Digest nonce="x"',),  # no realm
        (digest(algorithm="SHA-1"),),
        ('Digest realm="x", nonce="y", qop="auth-conf"',),
    ):
        assert not client.on_challenge(challenge(*values)), values
        assert client.error == "no-usable-challenge"


def test_proxy_challenges_for_several_realms() -> None:
    client = DigestClient("trunk", "pw")
    assert client.on_challenge(challenge(digest("proxy1"), digest("proxy2", algorithm="SHA-256"), status=407))
    req = request("INVITE", "sip:+15551234@provider.example.net")
    req.headers.add("Authorization", "Digest stale-credentials")
    client.authorize(req)
    assert "Authorization" not in req.headers
    creds = [parse_auth(v).params for v in req.headers.get_all("Proxy-Authorization")]
    assert [(c["realm"], c["algorithm"]) for c in creds] == [("proxy1", "MD5"), ("proxy2", "SHA-256")]


def test_realm_restriction() -> None:
    client = DigestClient("trunk", "pw", realm=REALM)
    assert not client.on_challenge(challenge(digest("elsewhere")))
    assert client.on_challenge(challenge(digest("elsewhere"), digest(REALM)))
    assert list(client.states) == [REALM]


def test_auth_int_only_challenge_hashes_the_body() -> None:
    auth = DigestAuthenticator(REALM, b"s" * 32, qops=("auth-int",))
    req = request("MESSAGE", f"sip:bob@{REALM}", b"hi")
    client = DigestClient("bob", "pw")
    assert client.on_challenge(auth.challenge(req, NOW))
    client.authorize(req)
    assert sent(req)["qop"] == "auth-int"
    ha1s = {"SHA-256": compute_ha1("bob", REALM, "pw", "SHA-256")}
    assert auth.verify(req, lambda u, a: ha1s.get(a) if u == "bob" else None, NOW).ok


@pytest.mark.parametrize("bad", ["a\r\nb", "a\nb"])
def test_credentials_cannot_inject_header_lines(bad: str) -> None:
    with pytest.raises(ValueError):
        DigestClient(bad, "pw")
    with pytest.raises(ValueError):
        DigestClient("u", bad)


def test_reset_forgets_everything() -> None:
    client = DigestClient("trunk", "pw")
    assert client.on_challenge(challenge(digest()))
    client.reset()
    req = request()
    client.authorize(req)
    assert "Authorization" not in req.headers
