"""Header field names and the ordered, case-insensitive header container.

Names are case-insensitive and have compact forms (RFC 3261 §7.3.1, §7.3.3, and the
forms later RFCs registered with IANA). A field is stored once per header line, its
value unfolded and trimmed but otherwise as received, so that a message serializes
back to what it said. Comma-separated lists are split on demand (`values`), and only
for fields whose grammar is a list: never Authorization, WWW-Authenticate,
Proxy-Authenticate, Proxy-Authorization, Date, ... whose values contain commas.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from .grammar import TOKEN_RE, split_commas

# Compact forms: RFC 3261 §7.3.3 (c e f i k l m s t v) and the IANA "Header Fields" registry.
COMPACT_FORMS: Final[dict[str, str]] = {
    "a": "accept-contact",  # RFC 3841
    "b": "referred-by",  # RFC 3892
    "c": "content-type",
    "d": "request-disposition",  # RFC 3841
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",  # RFC 3841
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",  # RFC 4474 (obsoleted by RFC 8224)
    "o": "event",  # RFC 6665
    "r": "refer-to",  # RFC 3515
    "s": "subject",
    "t": "to",
    "u": "allow-events",  # RFC 6665
    "v": "via",
    "x": "session-expires",  # RFC 4028
    "y": "identity",  # RFC 8224
}

# Canonical spellings used on output (RFC 3261 §20 and the RFCs that define the others).
_CANONICAL_NAMES: Final = (  # noqa: SIM905
    "Accept Accept-Contact Accept-Encoding Accept-Language Alert-Info Allow Allow-Events "
    "Authentication-Info Authorization Call-ID Call-Info Contact Content-Disposition "
    "Content-Encoding Content-Language Content-Length Content-Type CSeq Date Error-Info Event "
    "Expires From History-Info Identity Identity-Info In-Reply-To Max-Breadth Max-Forwards "
    "MIME-Version Min-Expires Min-SE Organization P-Asserted-Identity P-Preferred-Identity "
    "Path Priority Privacy Proxy-Authenticate Proxy-Authorization Proxy-Require RAck Reason "
    "Record-Route Refer-To Referred-By Reject-Contact Replaces Reply-To Request-Disposition "
    "Require Retry-After Route RSeq Security-Client Security-Server Security-Verify Server "
    "Service-Route Session-Expires SIP-ETag SIP-If-Match Subject Subscription-State Supported "
    "Timestamp To Unsupported User-Agent Via Warning WWW-Authenticate"
).split()
CANONICAL: Final[dict[str, str]] = {name.lower(): name for name in _CANONICAL_NAMES}

# Fields whose grammar is a comma list (§7.3.1: only these may be combined or split).
_LIST_FIELD_NAMES: Final = (  # noqa: SIM905
    "accept accept-contact accept-encoding accept-language alert-info allow allow-events "
    "call-info contact content-encoding content-language error-info history-info in-reply-to "
    "p-asserted-identity p-preferred-identity path proxy-require reason record-route "
    "reject-contact require route security-client security-server security-verify "
    "service-route supported unsupported via warning"
).split()
LIST_FIELDS: Final = frozenset(_LIST_FIELD_NAMES)

# Spelling -> (key, output name) for the spellings seen on the wire every day;
# anything else goes through `field_name`.
NAME_CACHE: Final[dict[str, tuple[str, str]]] = {}
for _key, _name in CANONICAL.items():
    for _spelling in (_name, _key, _name.upper()):
        NAME_CACHE[_spelling] = (_key, _name)
for _short, _key in COMPACT_FORMS.items():
    _name = CANONICAL.get(_key, _key.title())
    NAME_CACHE[_short] = NAME_CACHE[_short.upper()] = (_key, _name)


def field_key(name: str) -> str:
    """The lookup key of a header name: lowered, compact form expanded."""
    cached = NAME_CACHE.get(name)
    if cached is not None:
        return cached[0]
    key = name.lower()
    return COMPACT_FORMS.get(key, key)


def field_name(name: str) -> tuple[str, str] | None:
    """(key, output name) for a header name as received, or None if it is not a token."""
    cached = NAME_CACHE.get(name)
    if cached is not None:
        return cached
    if TOKEN_RE.fullmatch(name) is None:
        return None
    key = name.lower()
    key = COMPACT_FORMS.get(key, key)
    return key, CANONICAL.get(key, name)


_EMPTY: Final[list[str]] = []


def _unpack(packed: str) -> list[Field]:
    """The fields Headers.compact packed (keys and names shared again through NAME_CACHE)."""
    out: list[Field] = []
    if not packed:
        return out
    for line in packed.split("\n"):
        key, name, value = line.split("\r", 2)
        cached = NAME_CACHE.get(name)
        if cached is not None and cached == (key, name):
            key, name = cached
        out.append((key, name, value))
    return out


Field = tuple[str, str, str]
"""(key, name as it will be written, value)."""


class Headers:
    """The header fields of a message, in order, looked up case-insensitively.

    `typed` caches parsed values for the message's typed accessors; any change to the
    fields clears it. Content-Length is not kept here: it is computed from the body.
    """

    __slots__ = ("_index", "_store", "typed")

    # the fields, or after compact() the same fields packed in one string (key CR name CR
    # value, LF between fields: none of them can hold CR or LF once unfolded, §7.3.1)
    _store: list[Field] | str
    _index: dict[str, list[str]] | None
    typed: dict[str, object]

    @property
    def _fields(self) -> list[Field]:
        store = self._store
        if isinstance(store, str):
            store = self._store = _unpack(store)
        return store

    @_fields.setter
    def _fields(self, fields: list[Field]) -> None:
        self._store = fields

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._store = []
        self._index = None
        self.typed = {}
        for name, value in fields:
            self.add(name, value)

    @classmethod
    def from_fields(cls, fields: list[Field], index: dict[str, list[str]] | None = None) -> Headers:
        """Wrap already validated fields (the parser's fast path)."""
        headers = cls.__new__(cls)
        headers._store = fields
        headers._index = index
        headers.typed = {}
        return headers

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for key, _, value in self._fields:
                if key in index:
                    index[key].append(value)
                else:
                    index[key] = [value]
            self._index = index
        return index

    def _changed(self) -> None:
        self._index = None
        self.typed.clear()

    def compact(self) -> None:
        """Forget the lookup index and the parsed values (rebuilt on the next lookup) and pack
        the fields in one string (unpacked on the next use): for messages kept a long time and
        rarely read again (a call's INVITE once answered, the ACK cached for 2xx retransmissions).
        Saves ~120 bytes per field."""
        self._changed()
        fields = self._store
        if isinstance(fields, list) and not any("\r" in v or "\n" in v for _, _, v in fields):
            self._store = "\n".join(f"{k}\r{n}\r{v}" for k, n, v in fields)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first field called `name`."""
        values = self._lookup().get(field_key(name))
        return values[0] if values else default

    def get_list(self, key: str) -> list[str]:
        """get_all for a key as `field_key` returns it, without a copy: do not modify."""
        return self._lookup().get(key, _EMPTY)

    def get_all(self, name: str) -> list[str]:
        """The values of every field called `name`, one per header line, in order."""
        return list(self._lookup().get(field_key(name), ()))

    def values(self, name: str) -> list[str]:
        """Like get_all, with list fields (Via, Contact, Allow, ...) split at their commas."""
        key = field_key(name)
        values = self._lookup().get(key, [])
        if key not in LIST_FIELDS:
            return list(values)
        return [element for value in values for element in split_commas(value) if element]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and field_key(name) in self._lookup()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((name, value) for _, name, value in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._fields] == [(k, v) for k, _, v in other._fields]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def copy(self) -> Headers:
        return Headers.from_fields(list(self._fields))

    def fields(self) -> list[Field]:
        return list(self._fields)

    @staticmethod
    def _check(name: str, value: str) -> tuple[str, str]:
        named = field_name(name)
        if named is None:
            raise ValueError(f"header name is not a token: {name!r}")
        if named[0] == "content-length":
            raise ValueError("Content-Length is computed from the body")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise ValueError(f"header value with CR, LF or NUL: {value!r}")
        return named

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Append a field, or put it before all others of its name (`first`), as a proxy
        does with its Via (§16.6 step 8)."""
        value = str(value).strip(" \t")
        key, out_name = self._check(name, value)
        if first:
            at = next((i for i, f in enumerate(self._fields) if f[0] == key), len(self._fields))
            self._fields.insert(at, (key, out_name, value))
        else:
            self._fields.append((key, out_name, value))
        self._changed()

    def set(self, name: str, value: str) -> None:
        """Replace every field called `name` by one, where the first one was."""
        value = str(value).strip(" \t")
        key, out_name = self._check(name, value)
        at = next((i for i, f in enumerate(self._fields) if f[0] == key), len(self._fields))
        self._fields = [f for f in self._fields if f[0] != key]
        self._fields.insert(at, (key, out_name, value))
        self._changed()

    def remove(self, name: str) -> int:
        """Remove every field called `name`; returns how many there were."""
        key = field_key(name)
        before = len(self._fields)
        self._fields = [f for f in self._fields if f[0] != key]
        if len(self._fields) != before:
            self._changed()
        return before - len(self._fields)

    def pop_first(self, name: str) -> str | None:
        """Remove the first element of a field: the first comma-list element for list
        fields (a proxy removing its Via, §16.7 step 3), else the first field."""
        key = field_key(name)
        for i, (k, out_name, value) in enumerate(self._fields):
            if k != key:
                continue
            if key in LIST_FIELDS:
                elements = split_commas(value)
                if len(elements) > 1:
                    self._fields[i] = (k, out_name, ", ".join(elements[1:]))
                    self._changed()
                    return elements[0]
            del self._fields[i]
            self._changed()
            return value
        return None
