"""The B2BUA: calls between extensions and from trusted peers to company numbers, with
media anchored on the engine (see b2bua.py)."""

from .admission import Admission, AdmissionConfig
from .b2bua import B2bua
from .media import DEFAULT_TRANSCODE, MediaControl, MediaError, MediaUnavailableError, NgMediaControl
from .model import ALLOW, B2buaConfig, Call, CallPhase, CallStats, Leg, SipPort, best_status
from .routing import Dialplan, DialplanSnapshot, FromTrunk, NumberEntry, Refused, Route, Target, TrunkResolver

__all__ = [
    "ALLOW",
    "DEFAULT_TRANSCODE",
    "Admission",
    "AdmissionConfig",
    "B2bua",
    "B2buaConfig",
    "Call",
    "CallPhase",
    "CallStats",
    "Dialplan",
    "DialplanSnapshot",
    "FromTrunk",
    "Leg",
    "MediaControl",
    "MediaError",
    "MediaUnavailableError",
    "NgMediaControl",
    "NumberEntry",
    "Refused",
    "Route",
    "SipPort",
    "Target",
    "TrunkResolver",
    "best_status",
]
