"""ESP per-packet processing (RFC 4303): encapsulation, decapsulation, anti-replay.

Pure functions over bytes, no sockets: the data plane hands every packet to an
:class:`EspSa` and counts the ``reason`` of every :class:`EspError` it catches.
"""

from ikegate.esp.errors import (
    DROP_DUMMY,
    DROP_ICV,
    DROP_LENGTH,
    DROP_NEXT_HEADER,
    DROP_PADDING,
    DROP_REASONS,
    DROP_REPLAY,
    DROP_SEQ_OVERFLOW,
    DROP_SHORT,
    DROP_UNKNOWN_SPI,
    EspError,
)
from ikegate.esp.replay import ReplayWindow
from ikegate.esp.sa import (
    NEXT_HEADER_IPV4,
    NEXT_HEADER_IPV6,
    NEXT_HEADER_NONE,
    EspSa,
    next_header_for,
)

__all__ = [
    "DROP_DUMMY",
    "DROP_ICV",
    "DROP_LENGTH",
    "DROP_NEXT_HEADER",
    "DROP_PADDING",
    "DROP_REASONS",
    "DROP_REPLAY",
    "DROP_SEQ_OVERFLOW",
    "DROP_SHORT",
    "DROP_UNKNOWN_SPI",
    "NEXT_HEADER_IPV4",
    "NEXT_HEADER_IPV6",
    "NEXT_HEADER_NONE",
    "EspError",
    "EspSa",
    "ReplayWindow",
    "next_header_for",
]
