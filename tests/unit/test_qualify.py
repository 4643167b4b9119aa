"""vpbx.pbx.qualify: OPTIONS qualify of registered contacts, on a fake clock."""

from __future__ import annotations

import pytest

from vpbx.pbx import Binding
from vpbx.pbx.qualify import Probe, Qualifier
from vpbx.sip import parse_message

LOCAL = ("192.0.2.10", 5060)


def binding(aor: str = "1001", n: int = 1, *, transport: str = "udp") -> Binding:
    return Binding(
        aor=aor,
        uri=f"sip:{aor}@10.0.0.{n}:5062",
        contact=f"<sip:{aor}@10.0.0.{n}:5062>",
        expires_at=1e12,
        call_id=f"c{n}",
        cseq=1,
        source=("203.0.113.7", 40000 + n),
        transport=transport,
    )


def qualifier(interval: float = 30.0, **kw: float) -> Qualifier:
    return Qualifier(interval_s=interval, local=lambda _dest: LOCAL, **kw)  # type: ignore[arg-type]


def first_probe(q: Qualifier, start: float = 0.0) -> tuple[Probe, float]:
    for step in range(int(q.interval_s * 10) + 2):
        t = start + step / 10
        probes = q.due(t)
        if probes:
            return probes[0], t
    raise AssertionError("no probe within one interval")


def test_options_request_is_rfc3261_options_to_the_contact_from_its_source() -> None:
    q = qualifier()
    b = binding(transport="tcp")
    q.sync([b], 0.0)
    probe, _ = first_probe(q)
    assert probe.dest == b.source and probe.transport == "TCP"
    msg = parse_message(bytes(probe.request))
    assert msg.method == "OPTIONS" and str(msg.uri) == b.uri  # type: ignore[union-attr]
    text = bytes(probe.request).decode()
    assert "Max-Forwards: 70\r\n" in text
    assert f"To: <{b.uri}>\r\n" in text
    via = msg.headers.get("via")
    assert via is not None and via.startswith("SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK") and "rport" in via
    assert msg.call_id and msg.call_id != b.call_id


def test_probes_of_many_bindings_are_spread_over_the_interval() -> None:
    q = qualifier(interval=30.0)
    q.sync([binding(f"u{i}", i % 250) for i in range(3000)], 0.0)
    per_second = [len(q.due(float(t))) for t in range(1, 31)]
    assert sum(per_second) == 3000  # each probed once in the first interval
    assert max(per_second) < 3000 / 30 * 1.5, per_second  # no burst: about 100 a second
    assert len(q.due(31.0)) < 200  # the second round follows the same spread


def test_unreachable_after_two_timeouts_and_back_on_any_answer() -> None:
    q = qualifier(interval=10.0)
    b = binding()
    q.sync([b], 0.0)
    key = (b.aor, b.uri)
    p1, t1 = first_probe(q)
    assert q.on_answer(key, p1.token, t1 + 0.05) == pytest.approx(0.05)
    assert q.counts() == (1, 0) and q.reachable(*key)

    p2, t2 = first_probe(q, t1 + 0.1)
    assert t2 == pytest.approx(t1 + 10.0, abs=0.11)
    assert q.expire(t2 + 9.9) == []  # not timed out yet
    assert q.expire(t2 + 10.0) == []  # one timeout: still reachable
    assert q.reachable(*key) and q.counts() == (1, 0)
    p3, t3 = first_probe(q, t2 + 10.0)
    assert p3.token != p2.token
    assert q.expire(t3 + 10.0) == [key]  # the second in a row
    assert not q.reachable(*key) and q.counts() == (0, 1)
    # a late answer to the timed-out probe changes nothing
    assert q.on_answer(key, p3.token, t3 + 11.0) is None
    assert not q.reachable(*key)

    p4, t4 = first_probe(q, t3 + 10.0)
    assert q.on_answer(key, p4.token, t4 + 0.2) == pytest.approx(0.2)  # a 404/405/501 counts too
    assert q.reachable(*key) and q.counts() == (1, 0)


def test_transport_errors_count_like_timeouts_and_are_consecutive() -> None:
    q = qualifier(interval=5.0, max_failures=2)
    b = binding()
    key = (b.aor, b.uri)
    q.sync([b], 0.0)
    p, t = first_probe(q)
    q.on_failure(key, p.token, t)
    p, t = first_probe(q, t + 0.1)
    q.on_answer(key, p.token, t + 0.01)  # an answer in between resets the count
    p, t = first_probe(q, t + 0.1)
    q.on_failure(key, p.token, t)
    assert q.reachable(*key)
    p, t = first_probe(q, t + 0.1)
    q.on_failure(key, p.token, t)
    assert not q.reachable(*key)


def test_one_probe_in_flight_and_timeout_defaults_to_timer_f() -> None:
    q = qualifier(interval=60.0)
    assert q.timeout_s == 32.0  # 64*T1
    assert qualifier(interval=1.0).timeout_s == 1.0
    q.sync([binding()], 0.0)
    _, t = first_probe(q)
    assert q.due(t + 120.0) == []  # still awaiting the first
    assert q.next_deadline() == pytest.approx(t + 32.0)


def test_unknown_contacts_are_reachable_and_gone_bindings_are_forgotten() -> None:
    q = qualifier(interval=2.0, max_failures=1)
    a, b = binding(n=1), binding(n=2)
    q.sync([a, b], 0.0)
    assert q.reachable(a.aor, a.uri) and q.counts() == (0, 0)  # not probed yet: calls ring it
    for p in q.due(2.0):
        q.on_failure(p.key, p.token, 2.0)
    assert q.counts() == (0, 2)
    q.sync([a], 3.0)  # b unregistered
    assert q.counts() == (0, 1) and set(q.contacts) == {(a.aor, a.uri)}
    assert q.reachable(b.aor, b.uri)  # a later binding of that URI starts afresh
    moved = Binding(**{**{f: getattr(a, f) for f in a.__slots__}, "source": ("198.51.100.1", 1)})
    q.sync([moved], 4.0)
    assert q.contacts[a.aor, a.uri].dest == ("198.51.100.1", 1)  # re-REGISTER from a new NAT port


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        qualifier(interval=0.0)
    with pytest.raises(ValueError, match="max_failures"):
        qualifier(max_failures=0)
