"""The registrar's location service kept in the database (issue 4: bindings survive a
restart), as a `LocationStore` over the write-behind `RegistrationWriter`.

Every method is synchronous and touches memory only: lookups read the writer's
in-memory view, changes are queued there and written by its background task in
batched transactions. `replace` is atomic as the Protocol asks: it runs without an
await, so a flush sees all of one REGISTER's changes or none.

What a row keeps of a binding: the contact URI, expiry, Call-ID/CSeq, source
(`received`), transport, q, User-Agent, +sip.instance and reg-id. The Contact value
listed in 200 responses is rebuilt from those (`<uri>;q=..;+sip.instance=..;reg-id=..`),
so other Contact parameters (display name, feature tags) are not listed after a restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from vpbx.sip.address import parse_address
from vpbx.sip.errors import SipParseError
from vpbx.store.registrations import Binding as Row

from .location import Binding

if TYPE_CHECKING:  # the writer is asyncio (vpbx.io); this module only calls its plain methods
    from vpbx.io.registration_writer import RegistrationWriter

INSTANCE: Final = "+sip.instance"
REG_ID: Final = "reg-id"


def _format_source(source: tuple[str, int]) -> str:
    host, port = source
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_source(text: str | None) -> tuple[str, int]:
    if not text:
        return "", 0
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def to_row(binding: Binding) -> Row:
    """A registrar binding as the store keeps it."""
    instance: str | None = None
    reg_id: int | None = None
    try:
        params = parse_address(binding.contact).params
    except SipParseError:
        params = {}
    instance = params.get(INSTANCE)
    text = params.get(REG_ID)
    if text is not None and text.isdigit():
        reg_id = int(text)
    return Row(
        username=binding.aor,
        contact=binding.uri,
        expires_at=binding.expires_at,
        received=_format_source(binding.source),
        transport=binding.transport,
        call_id=binding.call_id,
        cseq=binding.cseq,
        user_agent=binding.user_agent,
        instance_id=instance,
        reg_id=reg_id,
        q=binding.q,
    )


def from_row(row: Row) -> Binding:
    """A stored binding as the registrar sees it (the Contact value rebuilt)."""
    contact = f"<{row.contact}>"
    if row.q is not None:
        contact += f";q={row.q:g}"
    if row.instance_id is not None:
        contact += f";{INSTANCE}={row.instance_id}"
    if row.reg_id is not None:
        contact += f";{REG_ID}={row.reg_id}"
    return Binding(
        aor=row.username,
        uri=row.contact,
        contact=contact,
        expires_at=row.expires_at,
        call_id=row.call_id,
        cseq=row.cseq,
        source=_parse_source(row.received),
        transport=row.transport,
        q=row.q,
        user_agent=row.user_agent,
    )


class DatabaseLocationStore:
    """A LocationStore whose bindings live in the database through `writer`.
    `writer.upsert` may raise BacklogFullError (the database is unreachable for long):
    the caller answers 503 then."""

    __slots__ = ("writer",)

    def __init__(self, writer: RegistrationWriter) -> None:
        self.writer = writer

    def bindings(self, aor: str, now: float) -> list[Binding]:
        return [from_row(r) for r in self.writer.bindings(aor, now)]

    def replace(self, aor: str, bindings: list[Binding]) -> None:
        writer = self.writer
        if not bindings:
            writer.remove_all(aor)
            return
        keep = {b.uri for b in bindings}
        for old in writer.bindings(aor, float("-inf")):
            if old.contact not in keep:
                writer.remove(aor, old.contact)
        for b in bindings:
            writer.upsert(to_row(b))

    def expire(self, now: float) -> list[Binding]:
        gone = [from_row(r) for r in self.writer.expired(now)]
        if gone:
            self.writer.purge(now)
        return gone

    def count(self) -> int:
        return self.writer.count()
