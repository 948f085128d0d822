"""The TUN device of the userspace data plane (``ipsec0`` by default).

Opened the way strongSwan's kernel-libipsec does it: ``/dev/net/tun`` with
``TUNSETIFF(IFF_TUN | IFF_NO_PI)``, so every ``read`` returns one bare IP packet (IPv4 or
IPv6, told apart by the version nibble) and every ``write`` injects one.  No external
package (python-pytun) is needed for two ioctls.

The device is not persistent: it disappears, with every route through it, when the last
file descriptor on it is closed, i.e. when ikegate and its workers exit, even after a
crash.  A persistent device of the same name left by something else is taken over (its
addresses and our routes are flushed by the caller); a device in use by another live
process makes :func:`open_tun` fail with ``EBUSY``, and we never fight over it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

__all__ = ["DEFAULT_MTU", "DEFAULT_NAME", "TunError", "open_tun"]

DEFAULT_NAME = "ipsec0"
#: strongSwan's kernel-libipsec default (``charon.plugins.kernel-libipsec.mtu``): an inner
#: packet of 1400 bytes plus the outer IPv6 header, UDP encapsulation and the ESP overhead
#: of every transform but HMAC-SHA2-512 still fits a 1500-byte link.
DEFAULT_MTU = 1400

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFNAMSIZ = 16
_IFREQ = struct.Struct("16sH22x")  # struct ifreq: name, flags (a union of 24 bytes follows)


class TunError(OSError):
    """The TUN device could not be created or configured."""


def open_tun(name: str = DEFAULT_NAME, *, vnet_hdr: bool = False) -> tuple[int, str]:
    """Create (or attach to) TUN device ``name``; return ``(fd, actual name)``.

    With ``vnet_hdr`` (``IFF_VNET_HDR``) every packet read or written is preceded by a
    10-byte ``virtio_net_hdr``, which lets us write GSO packets (see :mod:`.gro`).  The
    descriptor is blocking and not inherited by exec'ed children (the data plane passes
    it explicitly to its workers).
    """
    encoded = name.encode()
    if not encoded or len(encoded) >= IFNAMSIZ or b"/" in encoded or b" " in encoded:
        raise ValueError(f"invalid interface name {name!r}")
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise TunError(exc.errno, f"cannot open /dev/net/tun: {exc.strerror}") from None
    try:
        flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
        result = fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(encoded, flags))
    except OSError as exc:
        os.close(fd)
        if exc.errno == errno.EBUSY:
            raise TunError(exc.errno, f"TUN device {name} is in use by another process") from None
        if exc.errno == errno.EINVAL:
            raise TunError(exc.errno, f"{name} exists and is not a TUN device") from None
        raise TunError(exc.errno, f"TUNSETIFF {name}: {exc.strerror}") from None
    actual = _IFREQ.unpack(result)[0].rstrip(b"\0").decode()
    return fd, actual
