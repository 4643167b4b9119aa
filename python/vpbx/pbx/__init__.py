"""PBX logic above the SIP stack, sans-IO: the registrar and the location service
(later: B2BUA call legs, routing, groups, queues ...)."""

from .location import Binding, LocationStore, MemoryLocationStore
from .registrar import CredentialLookup, Registrar, RegistrarStats

__all__ = [
    "Binding",
    "CredentialLookup",
    "LocationStore",
    "MemoryLocationStore",
    "Registrar",
    "RegistrarStats",
]
