"""Errors of the store, one table (DESIGN.md §3.6)."""

from __future__ import annotations


class StoreError(Exception):
    """The database cannot be opened or written; the message says why and where."""


class BacklogFullError(StoreError):
    """The write-behind queue is at its bound: the caller should refuse the request
    (503 with Retry-After for a REGISTER) rather than lose the change."""


class ConflictError(StoreError):
    """A unique value (extension, SIP username, number) is already taken."""
