"""PBX logic above the SIP stack, sans-IO: the registrar and the location service
(later: B2BUA call legs, routing, groups, queues ...)."""

from .credentials import CredentialCache
from .location import Binding, LocationStore, MemoryLocationStore
from .location_db import DatabaseLocationStore
from .registrar import CredentialLookup, Registrar, RegistrarStats

__all__ = [
    "Binding",
    "CredentialCache",
    "CredentialLookup",
    "DatabaseLocationStore",
    "LocationStore",
    "MemoryLocationStore",
    "Registrar",
    "RegistrarStats",
]
