"""Identifiers a SIP element makes up: Via branches, From/To tags, Call-IDs and initial
CSeq numbers (RFC 3261 §8.1.1.4, §8.1.1.5, §8.1.1.7, §19.3).

All come from one generator. By default it draws from the operating system's random
source (tags and Call-IDs must be unguessable, §19.3); `seed_ids(n)` replaces it with a
seeded `random.Random` so that tests get the same identifiers on every run.
"""

from __future__ import annotations

import random
from typing import Final

MAGIC_COOKIE: Final = "z9hG4bK"  # §8.1.1.7: every RFC 3261 branch starts with it


class IdGenerator:
    """Makes identifiers from one random source (SystemRandom unless seeded)."""

    __slots__ = ("_bits",)

    def __init__(self, seed: int | None = None) -> None:
        rng = random.SystemRandom() if seed is None else random.Random(seed)
        self._bits = rng.getrandbits

    def branch(self) -> str:
        """A Via branch: the magic cookie and 64 random bits (§8.1.1.7)."""
        return f"{MAGIC_COOKIE}{self._bits(64):016x}"

    def tag(self) -> str:
        """A From/To tag with 64 random bits; §19.3 asks for at least 32."""
        return f"{self._bits(64):016x}"

    def call_id(self, host: str | None = None) -> str:
        """A Call-ID: 128 random bits, `@host` when given (§8.1.1.4, §20.8)."""
        local = f"{self._bits(128):032x}"
        return local if not host else f"{local}@{host}"

    def cseq(self) -> int:
        """An initial CSeq number below 2**31 (§8.1.1.5); kept under 2**30 so that a
        long dialog has room to count up."""
        return self._bits(30) or 1


_generator = IdGenerator()


def seed_ids(seed: int | None) -> None:
    """Make the module functions deterministic (tests), or random again with None."""
    global _generator  # noqa: PLW0603
    _generator = IdGenerator(seed)


def new_branch() -> str:
    return _generator.branch()


def new_tag() -> str:
    return _generator.tag()


def new_call_id(host: str | None = None) -> str:
    return _generator.call_id(host)


def new_cseq() -> int:
    return _generator.cseq()
