"""A B leg challenged by the far end (a trunk's provider answering our INVITE with 401 or
407), sans-IO.

RFC 3261 §22.2/§22.3: the UAC sends the request again with Authorization /
Proxy-Authorization; §8.1.3.5: as a new transaction (a new Via branch) with the CSeq
one higher and the same Call-ID, From tag and To (still without a tag). The ACK for the
401/407 is the INVITE client transaction's own (§17.1.1.3), nothing to do here.

One answer per challenge round: vpbx.sip.DigestClient gives up on a second fresh challenge
after it answered one (wrong credentials) and after `max_stale` stale ones, so a provider
that challenges forever ends the leg with its 401/407 instead of a loop.
"""

from __future__ import annotations

import re
from typing import Final

from vpbx.sip.ids import new_branch
from vpbx.sip.message import Request, Response

from .model import Leg, SipPort

__all__ = ["TRUNK_REFUSED", "answer_challenge"]

_BRANCH: Final = re.compile(r"branch=[^;,\s]+")
TRUNK_REFUSED: Final = 503  # the far end rejected our credentials


def answer_challenge(port: SipPort, leg: Leg, response: Response) -> int | None:
    """Send `leg`'s INVITE again with credentials for `response` (a 401/407 to it).

    None: handled (sent again, the leg goes on with the new transaction; or a late answer
    to an earlier attempt, ignored). Otherwise the status the leg failed with: the 401/407
    itself for a leg without credentials (or cancelled, or the layer refused), 503 when
    the far end refused our credentials: the caller could not answer that challenge, the
    trunk is what is broken."""
    client = leg.auth
    if client is None or leg.final or leg.cancelled or leg.on_event is None:
        return response.status
    if response.cseq.seq != leg.request.cseq.seq:
        return None
    if not client.on_challenge(response):
        return TRUNK_REFUSED
    old = leg.request
    headers = old.headers.copy()
    via = headers.get("Via") or ""
    headers.set("Via", _BRANCH.sub(f"branch={new_branch()}", via, count=1))
    headers.set("CSeq", f"{old.cseq.seq + 1} INVITE")
    request = Request("INVITE", old.uri, headers, old.body)
    client.authorize(request)
    key = port.request(request, leg.dest, leg.transport, leg.on_event)
    if key is None:
        return response.status
    leg.request = request
    leg.key = key
    leg.dialog = None  # an early dialog of the challenged attempt ends with it (§12.3)
    return None
