"""Every ``error-reason`` and ``warning`` text the NG layer sends, in one table.

Where rtpengine gives a reason for the same condition we use its wording, so that clients and
operators matching on these strings see what they know.
"""

from __future__ import annotations

__all__ = ["NgError"]


class NgError(Exception):
    """A request that gets ``{"result": "error", "error-reason": reason}``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Framing and decoding (rtpengine's texts, with our detail appended after a colon)
NO_PAYLOAD = "Invalid data (no payload)"
BAD_BENCODE = "Could not decode bencode dictionary"
BAD_JSON = "Failed to parse JSON document"
BAD_FORMAT = "Invalid NG data format"
NO_COMMAND = 'Dictionary contains no key "command"'
UNKNOWN_COMMAND = "Unrecognized command"

# Required keys
NO_SDP = "No SDP body in message"
NO_CALL_ID = "No call-id in message"
NO_FROM_TAG = "No from-tag in message"
NO_TO_TAG = "No to-tag in message"

# Lookups
UNKNOWN_CALL = "Unknown call-id"
UNKNOWN_CALL_MEDIA = "Unknown call-ID"  # rtpengine spells it so for the media commands
DIALOGUE = "Invalid dialogue association"
DELETE_NOT_FOUND = "Call-ID not found or tags didn't match"
NO_LABEL = "No monologue matching the given label"
NO_FROM_TAG_PARTY = "From-tag given, but no such tag exists"
NO_PARTY = "No participant party specified"

# SDP
BAD_SDP = "Failed to parse SDP"
INCOMPLETE_SDP = "Incomplete SDP specification"

# Other commands
BAD_LIMIT = "invalid limit, must be >= 0"
NO_MEDIA_FILE = "No media file specified"
BAD_DTMF_CODE = "Out of range 'code' specified"
NO_DTMF_CODE = "No DTMF code or digit specified"
INTERNAL = "Internal error"

# Media engine (vpbx.media.ng_backend): what this media node cannot do (yet)
NO_MEDIA_BLOB = "Playing media from a blob is not supported: give a file on the media node"
NOT_PLAYING = "Not currently playing media"
NO_TRANSCODE_CODEC = "Cannot transcode: codec {codec} is not supported by this media node"
NO_LEG_CODEC = "Cannot transcode: no codec negotiated for a leg"
UNKNOWN_INTERFACE = "Unknown interface '{name}'"
NO_FAMILY_ON_INTERFACE = "No address of family {family} on interface '{name}'"
NO_FAMILY = "No interface with an address of family {family}"
NO_LEG = "No media {index} for party '{party}' in call"
BAD_MEDIA_ADDRESS = "Media address '{address}' is not an IP address"

# Warnings (result "ok")
NO_SRTP = "SRTP (SDES/DTLS) is not supported yet: crypto and fingerprint attributes passed through unchanged"
NO_ICE = "ICE is not supported: ICE attributes removed"
NO_ICE_RELAY = "ICE=force-relay is not supported: ICE attributes removed"
