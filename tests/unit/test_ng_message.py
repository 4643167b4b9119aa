"""NG framing (``<cookie> <dict>``) and the retransmission cache."""

from __future__ import annotations

import pytest

from vpbx.ng.message import MAX_COOKIE, Frame, NgFramingError, ReplyCache, join, split

A = ("192.0.2.1", 5060)
B = ("192.0.2.2", 5060)


def test_split_and_join() -> None:
    assert split(b"5323_1 d7:command4:pinge") == Frame(b"5323_1", b"d7:command4:pinge")
    assert split(b"c d1:a1: e") == Frame(b"c", b"d1:a1: e")  # only the first space separates
    assert split(b"c ") == Frame(b"c", b"")
    assert join(b"5323_1", b"d6:result4:ponge") == b"5323_1 d6:result4:ponge"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "no space"),
        (b"d7:command4:pinge", "no space"),
        (b" d7:command4:pinge", "empty cookie"),
        (b"x" * (MAX_COOKIE + 1) + b" d1:ai1ee", "longer than"),
        (b"a\x00b d1:ai1ee", "control characters"),
    ],
)
def test_unframeable(data: bytes, words: str) -> None:
    with pytest.raises(NgFramingError, match=words):
        split(data)


def test_cache_answers_within_ttl_per_source() -> None:
    cache = ReplyCache(ttl=30.0)
    cache.put(A, b"k1", b"k1 reply", now=100.0)
    assert cache.get(A, b"k1", now=129.9) == b"k1 reply"
    assert cache.get(B, b"k1", now=110.0) is None  # same cookie from another client: a new request
    assert cache.get(A, b"k2", now=110.0) is None
    assert cache.get(A, b"k1", now=130.0) is None  # expired
    assert len(cache) == 0 and cache.size_bytes == 0
    assert cache.hits == 1


def test_cache_is_bounded_in_entries_and_bytes() -> None:
    cache = ReplyCache(ttl=30.0, max_entries=3, max_bytes=100)
    for i in range(5):
        cache.put(A, b"%d" % i, b"x" * 10, now=float(i))
    assert len(cache) == 3 and cache.evicted == 2
    assert cache.get(A, b"0", now=5.0) is None and cache.get(A, b"4", now=5.0) is not None
    cache.put(A, b"big", b"y" * 95, now=6.0)  # pushes out older replies to stay under 100 bytes
    assert cache.size_bytes <= 100 and cache.get(A, b"big", now=6.0) is not None
    cache.put(A, b"huge", b"z" * 1000, now=7.0)  # larger than the whole cache: not kept
    assert cache.get(A, b"huge", now=7.0) is None


def test_cache_replacing_an_entry_keeps_the_byte_count() -> None:
    cache = ReplyCache()
    cache.put(A, b"k", b"12345", now=0.0)
    cache.put(A, b"k", b"123", now=1.0)
    assert cache.size_bytes == 3 and len(cache) == 1


def test_cache_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        ReplyCache(ttl=0)
