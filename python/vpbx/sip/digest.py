"""Digest arithmetic shared by the server (auth.py) and the client (auth_client.py).

The computations of RFC 7616 §3.4.1-§3.4.3 as RFC 8760 §2.1-§2.2 applies them to SIP
(RFC 3261 §22.4):

    HA1      = H(username ":" realm ":" password)                      (stored per algorithm)
    HA1-sess = H(HA1 ":" nonce ":" cnonce)                             ("-sess" variants)
    HA2      = H(method ":" digest-uri)                                (qop=auth or none)
    HA2      = H(method ":" digest-uri ":" H(entity-body))            (qop=auth-int)
    response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)       (qop present)
    response = H(HA1 ":" nonce ":" HA2)                                (RFC 2069, no qop)

Every H() is written as lowercase hexadecimal (RFC 8760 §2.2). Strings are hashed as
UTF-8 (RFC 7616 §4: the only charset the scheme defines).
"""

from __future__ import annotations

import hashlib
from typing import Final

# RFC 7616 §6.1 / RFC 8760 §2.1: the "Hash Algorithms for HTTP Digest Authentication"
# registry entries we implement, strongest first, mapped to hashlib names.
# SHA-512-256 is SHA-512/256 (FIPS 180-4).
_HASHLIB_NAMES: Final[dict[str, str]] = {
    "SHA-512-256": "sha512_256",
    "SHA-256": "sha256",
    "MD5": "md5",
}


def _available(name: str) -> bool:
    try:
        hashlib.new(name, b"")
    except ValueError:  # an OpenSSL build without SHA-512/256
        return False
    return True


BASE_ALGORITHMS: Final[tuple[str, ...]] = tuple(a for a, h in _HASHLIB_NAMES.items() if _available(h))
"""The hash algorithms this process can compute, strongest first."""

ALGORITHMS: Final[tuple[str, ...]] = tuple(
    name for base in BASE_ALGORITHMS for name in (base, f"{base}-sess")
)
"""Every algorithm value we understand, strongest first, each base before its -sess."""

_BY_UPPER: Final[dict[str, str]] = {name.upper(): name for name in ALGORITHMS}
_HEX_LEN: Final[dict[str, int]] = {
    name: hashlib.new(_HASHLIB_NAMES[name.removesuffix("-sess")]).digest_size * 2 for name in ALGORITHMS
}


def canonical_algorithm(value: str | None) -> str | None:
    """The registry spelling of an `algorithm` parameter, or None if we do not know it.
    Absent means MD5 (RFC 7616 §3.3, as in RFC 2617 §3.2.1); the value is case-insensitive."""
    if value is None:
        return "MD5"
    return _BY_UPPER.get(value.upper())


def base_algorithm(algorithm: str) -> str:
    """The hash whose HA1 is stored: "SHA-256-sess" -> "SHA-256"."""
    return algorithm[:-5] if algorithm.endswith("-sess") else algorithm


def is_session(algorithm: str) -> bool:
    return algorithm.endswith("-sess")


def hex_length(algorithm: str) -> int:
    """Length of a hex digest of `algorithm` (32 for MD5, 64 for the SHA-2 ones)."""
    return _HEX_LEN[algorithm]


def encode(text: str) -> bytes:
    """UTF-8, never failing: a header decoded with surrogate escapes turns back into
    its original bytes, and lone surrogates (never valid on the wire) pass through."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return text.encode("utf-8", "surrogatepass")


def hash_hex(algorithm: str, data: bytes) -> str:
    """H(data) as lowercase hex (RFC 8760 §2.2) with the base hash of `algorithm`."""
    return hashlib.new(_HASHLIB_NAMES[base_algorithm(algorithm)], data).hexdigest()


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """HA1 = H(username:realm:password) (RFC 7616 §3.4.2): what a user store keeps, one
    per base algorithm, so that verification never needs the password."""
    return hash_hex(algorithm, encode(f"{username}:{realm}:{password}"))


def compute_ha1s(username: str, realm: str, password: str) -> dict[str, str]:
    """HA1 for every base algorithm we can compute: store all of them when the password
    is set, so that whichever algorithm a phone picks can be checked."""
    return {alg: compute_ha1(username, realm, password, alg) for alg in BASE_ALGORITHMS}


def session_ha1(ha1: str, nonce: str, cnonce: str, algorithm: str) -> str:
    """The A1 of the -sess variants: H(HA1:nonce:cnonce) (RFC 7616 §3.4.2)."""
    return hash_hex(algorithm, encode(f"{ha1}:{nonce}:{cnonce}"))


def compute_response(
    ha1: str,
    *,
    algorithm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str = "",
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """The request-digest of RFC 7616 §3.4.1 (qop auth / auth-int) or of RFC 2069 (no
    qop, kept by RFC 3261 §22.4 for backward compatibility). `ha1` is the stored HA1 of
    the base algorithm; -sess is applied here. `nc` is the 8 hex digits as sent."""
    if is_session(algorithm):
        ha1 = session_ha1(ha1, nonce, cnonce, algorithm)
    if qop is not None and qop.lower() == "auth-int":
        a2 = f"{method}:{uri}:{hash_hex(algorithm, body)}"
    else:
        a2 = f"{method}:{uri}"
    ha2 = hash_hex(algorithm, encode(a2))
    if qop is None:
        return hash_hex(algorithm, encode(f"{ha1}:{nonce}:{ha2}"))
    return hash_hex(algorithm, encode(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
