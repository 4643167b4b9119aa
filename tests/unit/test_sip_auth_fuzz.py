"""Hypothesis fuzzing of digest authentication: whatever the Authorization fields say,
`verify` answers with one of its reasons and never raises; a credentials value with any
parameter changed never authenticates unless the change means nothing; the client takes
any challenge text without raising.

AUTH_FUZZ_EXAMPLES=20000 for a longer run."""

from __future__ import annotations

import os
import typing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpbx.sip import Request, Response, SipParseError, parse_auth, parse_message
from vpbx.sip.auth import DigestAuthenticator, Reason
from vpbx.sip.auth_client import DigestClient
from vpbx.sip.digest import compute_ha1s

REALM = "pbx.example.com"
NOW = 1_700_000_000.0
HA1S = {"1001": compute_ha1s("1001", REALM, "pw")}
REASONS = set(typing.get_args(Reason))
FUZZ = settings(
    max_examples=int(os.environ.get("AUTH_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
AUTH = DigestAuthenticator(
    REALM, b"f" * 32, algorithms=("SHA-256", "MD5", "MD5-sess"), qops=("auth", "auth-int")
)
PARAMS = ["username", "username*", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "nc", "qop"]
PARAMS += ["opaque", "userhash", "stale", "x-other"]


def lookup(user: str, algorithm: str) -> str | None:
    return HA1S.get(user, {}).get(algorithm)


def base_request() -> Request:
    return Request(
        "REGISTER",
        f"sip:{REALM}",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-f"),
            ("From", f"<sip:1001@{REALM}>;tag=a"),
            ("To", f"<sip:1001@{REALM}>"),
            ("Call-ID", "f@192.0.2.1"),
            ("CSeq", "1 REGISTER"),
        ],
    )


def header_text() -> st.SearchStrategy[str]:
    # Any characters a header value can hold after unfolding (no CR, LF or NUL).
    chars = st.characters(codec="utf-8", exclude_characters="\r\n\x00")
    pieces = st.one_of(
        st.text(chars, max_size=30),
        st.sampled_from(['"', "\\", ",", "=", "Digest ", "realm=", f'"{REALM}"', "nc=", "00000001"]),
    )
    return st.lists(pieces, max_size=12).map("".join)


def check(result_reason: str) -> None:
    assert result_reason in REASONS


@FUZZ
@given(st.lists(header_text(), min_size=1, max_size=3), st.booleans())
def test_any_authorization_text_gets_a_reason(values: list[str], proxy: bool) -> None:
    request = base_request()
    for value in values:
        request.headers.add("Proxy-Authorization" if proxy else "Authorization", value)
    result = AUTH.verify(request, lookup, NOW, proxy=proxy)
    check(result.reason)
    assert not result.ok


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(PARAMS),
        st.one_of(
            st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=80),
            st.sampled_from(
                ["", "auth", "auth-int", "MD5", "SHA-256", "md5-SESS", "00000001", REALM, "true"]
            ),
            st.text("0123456789abcdefABCDEF", min_size=7, max_size=65),
        ),
        max_size=len(PARAMS),
    ),
    st.booleans(),
)
def test_any_digest_parameters_get_a_reason(params: dict[str, str], realm_first: bool) -> None:
    if realm_first:
        params = {"realm": REALM, **params}
    request = base_request()
    value = "Digest " + ", ".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in params.items()
    )
    request.headers.add("Authorization", value)
    result = AUTH.verify(request, lookup, NOW)
    check(result.reason)
    assert not result.ok


def fresh_credentials(algorithm: str) -> Request:
    request = base_request()
    client = DigestClient("1001", "pw", algorithms=(algorithm,))
    assert client.on_challenge(AUTH.challenge(request, NOW))
    client.authorize(request)
    return request


@FUZZ
@given(
    st.sampled_from(["SHA-256", "MD5", "MD5-sess"]),
    st.sampled_from(
        ["username", "realm", "nonce", "uri", "response", "cnonce", "nc", "qop", "algorithm", "opaque"]
    ),
    st.one_of(st.text(max_size=70), st.text("0123456789abcdef", min_size=1, max_size=70)),
)
def test_changing_any_parameter_never_authenticates(algorithm: str, name: str, value: str) -> None:
    value = value.replace("\r", "").replace("\n", "").replace("\x00", "")
    request = fresh_credentials(algorithm)
    creds = parse_auth(request.headers.get("Authorization") or "")
    original = creds.params[name]
    creds.params[name] = value
    try:
        request.headers.set("Authorization", str(creds))
    except ValueError:
        return
    result = AUTH.verify(request, lookup, NOW)
    check(result.reason)
    harmless = value == original or (
        name in ("response", "algorithm", "qop") and value.lower() == original.lower()
    )
    if name == "nc" and len(value) == 8 and all(c in "0123456789abcdefABCDEF" for c in value):
        harmless = False  # a different count changes the digest
    if result.ok:
        assert harmless, (name, original, value)


@FUZZ
@given(st.binary(max_size=200))
def test_wire_bytes_in_an_authorization_field(junk: bytes) -> None:
    head = (
        b"REGISTER sip:pbx.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-w\r\n"
        b"From: <sip:1001@pbx.example.com>;tag=a\r\nTo: <sip:1001@pbx.example.com>\r\n"
        b"Call-ID: w@192.0.2.1\r\nCSeq: 1 REGISTER\r\nAuthorization: Digest "
    )
    try:
        message = parse_message(head + junk + b"\r\nContent-Length: 0\r\n\r\n")
    except SipParseError:
        return
    if isinstance(message, Request):
        check(AUTH.verify(message, lookup, NOW).reason)


@FUZZ
@given(st.lists(header_text(), max_size=4), st.sampled_from([401, 407]))
def test_client_takes_any_challenge_text(values: list[str], status: int) -> None:
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    response = Response(status, headers=[(name, v) for v in values])
    client = DigestClient("1001", "pw")
    if client.on_challenge(response):
        request = base_request()
        client.authorize(request)
        assert request.headers.get("Proxy-Authorization" if status == 407 else "Authorization")
    else:
        assert client.error == "no-usable-challenge"
