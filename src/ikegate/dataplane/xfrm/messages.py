"""Netlink XFRM messages, sans-IO: typed dataclasses in, bytes out, and back.

Only what ikegate's kernel data plane needs: the SA and policy messages
(``XFRM_MSG_NEWSA/DELSA/GETSA/UPDSA``, ``NEWPOLICY/DELPOLICY/GETPOLICY/UPDPOLICY``, dumps),
the ``XFRM_MSG_MAPPING`` notification (a NATed peer's port changed),
the netlink ``NLMSG_ERROR``/``NLMSG_DONE`` replies, and the attributes for algorithms,
UDP encapsulation, templates, replay state and last use.

Layouts follow ``include/uapi/linux/xfrm.h`` (Linux 6.1) with the C compiler's padding
written out (``x`` in the struct formats) so that the sizes match the kernel's:
``xfrm_selector`` 56, ``xfrm_usersa_info`` 224, ``xfrm_usersa_id`` 24,
``xfrm_userpolicy_info`` 168, ``xfrm_userpolicy_id`` 64, ``xfrm_user_tmpl`` 64,
``xfrm_encap_tmpl`` 24 bytes (checked against the header with the C compiler in the
tests).  Integers are in host byte order except SPIs and ports, which are big-endian in
the kernel's structures; this module takes and returns them as plain numbers.
Addresses are strings (``"192.0.2.1"``, ``"2001:db8::1"``); a zero address of the
structure's family decodes as ``"0.0.0.0"``/``"::"`` (and as ``""`` when the family is 0).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Iterator

__all__ = [
    "AlgoAead", "AlgoAuth", "AlgoCrypt", "EncapTmpl", "LastUsed", "LifetimeCfg", "LifetimeCur",
    "Message", "NetlinkError", "RawAttr", "ReplayEsn", "ReplayState", "Selector", "Stats",
    "UserMapping", "UserPolicyId", "UserPolicyInfo", "UserSaId", "UserSaInfo", "UserTmpl", "XfrmDecodeError",
    "decode", "decode_all", "encode", "find",
]

# -- netlink (linux/netlink.h) -----------------------------------------------------------
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_ROOT, NLM_F_MATCH = 0x100, 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLMSGHDR = struct.Struct("=IHHII")

# -- xfrm.h ------------------------------------------------------------------------------
XFRM_MSG_NEWSA, XFRM_MSG_DELSA, XFRM_MSG_GETSA = 0x10, 0x11, 0x12
XFRM_MSG_NEWPOLICY, XFRM_MSG_DELPOLICY, XFRM_MSG_GETPOLICY = 0x13, 0x14, 0x15
XFRM_MSG_UPDPOLICY, XFRM_MSG_UPDSA = 0x19, 0x1A
XFRM_MSG_MAPPING = 0x26
XFRMNLGRP_MAPPING = 8  # multicast group of XFRM_MSG_MAPPING

XFRMA_ALG_AUTH, XFRMA_ALG_CRYPT, XFRMA_ENCAP, XFRMA_TMPL = 1, 2, 4, 5
XFRMA_REPLAY_VAL, XFRMA_LASTUSED, XFRMA_ALG_AEAD, XFRMA_ALG_AUTH_TRUNC = 10, 15, 18, 20
XFRMA_REPLAY_ESN_VAL = 23

XFRM_INF = (1 << 64) - 1
XFRM_MODE_TRANSPORT, XFRM_MODE_TUNNEL = 0, 1
XFRM_POLICY_IN, XFRM_POLICY_OUT, XFRM_POLICY_FWD = 0, 1, 2
XFRM_POLICY_ALLOW, XFRM_POLICY_BLOCK = 0, 1
XFRM_STATE_NOECN, XFRM_STATE_DECAP_DSCP, XFRM_STATE_NOPMTUDISC = 1, 2, 4
XFRM_STATE_AF_UNSPEC, XFRM_STATE_ESN = 32, 128
UDP_ENCAP_ESPINUDP = 2
IPPROTO_ESP = 50

NLA_HDR = struct.Struct("=HH")


class XfrmDecodeError(ValueError):
    """Bytes that are not a well-formed netlink XFRM message."""


class NetlinkError(OSError):
    """The kernel refused a request: ``errno`` is the error it returned (positive)."""


def _align(n: int) -> int:
    return (n + 3) & ~3


# -- addresses -----------------------------------------------------------------------------

def family_of(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def pack_address(address: str, family: int) -> bytes:
    """``xfrm_address_t``: 16 bytes, IPv4 in the first 4."""
    if not address:
        return bytes(16)
    return socket.inet_pton(family, address).ljust(16, b"\0")


def unpack_address(data: bytes, family: int) -> str:
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, data[:4])
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, data[:16])
    return ""


# -- structures ------------------------------------------------------------------------------

_SELECTOR = struct.Struct("=16s16sHHHHHBBB3xiI")


@dataclass
class Selector:
    """``struct xfrm_selector`` (56 bytes): what traffic a policy (or SA) applies to."""

    family: int = 0
    daddr: str = ""
    saddr: str = ""
    prefixlen_d: int = 0
    prefixlen_s: int = 0
    proto: int = 0
    dport: int = 0
    dport_mask: int = 0
    sport: int = 0
    sport_mask: int = 0
    ifindex: int = 0
    user: int = 0

    SIZE = _SELECTOR.size

    def pack(self) -> bytes:
        return _SELECTOR.pack(pack_address(self.daddr, self.family), pack_address(self.saddr, self.family),
                              socket.htons(self.dport), socket.htons(self.dport_mask),
                              socket.htons(self.sport), socket.htons(self.sport_mask), self.family,
                              self.prefixlen_d, self.prefixlen_s, self.proto, self.ifindex, self.user)

    @classmethod
    def unpack(cls, data: bytes) -> "Selector":
        d, s, dp, dpm, sp, spm, fam, pd, ps, proto, ifindex, user = _SELECTOR.unpack_from(data)
        return cls(fam, unpack_address(d, fam), unpack_address(s, fam), pd, ps, proto, socket.ntohs(dp),
                   socket.ntohs(dpm), socket.ntohs(sp), socket.ntohs(spm), ifindex, user)


_LIFETIME_CFG = struct.Struct("=8Q")
_LIFETIME_CUR = struct.Struct("=4Q")
_STATS = struct.Struct("=3I")


@dataclass
class LifetimeCfg:
    """``struct xfrm_lifetime_cfg`` (64 bytes); everything unlimited by default."""

    soft_byte_limit: int = XFRM_INF
    hard_byte_limit: int = XFRM_INF
    soft_packet_limit: int = XFRM_INF
    hard_packet_limit: int = XFRM_INF
    soft_add_expires_seconds: int = 0
    hard_add_expires_seconds: int = 0
    soft_use_expires_seconds: int = 0
    hard_use_expires_seconds: int = 0

    def pack(self) -> bytes:
        return _LIFETIME_CFG.pack(*(getattr(self, f) for f in self.__dataclass_fields__))

    @classmethod
    def unpack(cls, data: bytes) -> "LifetimeCfg":
        return cls(*_LIFETIME_CFG.unpack_from(data))


@dataclass
class LifetimeCur:
    """``struct xfrm_lifetime_cur`` (32 bytes): traffic so far, times in wall-clock seconds."""

    bytes: int = 0
    packets: int = 0
    add_time: int = 0
    use_time: int = 0

    def pack(self) -> bytes:
        return _LIFETIME_CUR.pack(self.bytes, self.packets, self.add_time, self.use_time)

    @classmethod
    def unpack(cls, data: bytes) -> "LifetimeCur":
        return cls(*_LIFETIME_CUR.unpack_from(data))


@dataclass
class Stats:
    """``struct xfrm_stats`` (12 bytes): replay window and drop counters."""

    replay_window: int = 0
    replay: int = 0
    integrity_failed: int = 0

    def pack(self) -> bytes:
        return _STATS.pack(self.replay_window, self.replay, self.integrity_failed)

    @classmethod
    def unpack(cls, data: bytes) -> "Stats":
        return cls(*_STATS.unpack_from(data))


_ID = struct.Struct("=16sIB3x")  # struct xfrm_id, 24 bytes
_SA_TAIL = struct.Struct("=IIHBBB7x")  # seq reqid family mode replay_window flags, padding to 224


@dataclass
class UserSaInfo:
    """``struct xfrm_usersa_info`` (224 bytes): the body of NEWSA/UPDSA (and of GETSA replies)."""

    daddr: str
    saddr: str
    spi: int
    family: int
    proto: int = IPPROTO_ESP
    reqid: int = 0
    mode: int = XFRM_MODE_TUNNEL
    replay_window: int = 0
    flags: int = 0
    seq: int = 0
    sel: Selector = field(default_factory=Selector)
    lft: LifetimeCfg = field(default_factory=LifetimeCfg)
    curlft: LifetimeCur = field(default_factory=LifetimeCur)
    stats: Stats = field(default_factory=Stats)

    SIZE = 224

    def pack(self) -> bytes:
        return b"".join((
            self.sel.pack(),
            _ID.pack(pack_address(self.daddr, self.family), socket.htonl(self.spi), self.proto),
            pack_address(self.saddr, self.family),
            self.lft.pack(), self.curlft.pack(), self.stats.pack(),
            _SA_TAIL.pack(self.seq, self.reqid, self.family, self.mode, self.replay_window, self.flags),
        ))

    @classmethod
    def unpack(cls, data: bytes) -> "UserSaInfo":
        if len(data) < cls.SIZE:
            raise XfrmDecodeError(f"xfrm_usersa_info needs {cls.SIZE} bytes, got {len(data)}")
        seq, reqid, family, mode, window, flags = _SA_TAIL.unpack_from(data, 204)
        daddr, spi, proto = _ID.unpack_from(data, 56)
        return cls(daddr=unpack_address(daddr, family), saddr=unpack_address(data[80:96], family),
                   spi=socket.ntohl(spi), family=family, proto=proto, reqid=reqid, mode=mode,
                   replay_window=window, flags=flags, seq=seq, sel=Selector.unpack(data),
                   lft=LifetimeCfg.unpack(data[96:]), curlft=LifetimeCur.unpack(data[160:]),
                   stats=Stats.unpack(data[192:]))


_SA_ID = struct.Struct("=16sIHBx")


@dataclass
class UserSaId:
    """``struct xfrm_usersa_id`` (24 bytes): names an SA (DELSA, GETSA)."""

    daddr: str
    spi: int
    family: int
    proto: int = IPPROTO_ESP

    SIZE = _SA_ID.size

    def pack(self) -> bytes:
        return _SA_ID.pack(pack_address(self.daddr, self.family), socket.htonl(self.spi), self.family, self.proto)

    @classmethod
    def unpack(cls, data: bytes) -> "UserSaId":
        if len(data) < cls.SIZE:
            raise XfrmDecodeError("short xfrm_usersa_id")
        daddr, spi, family, proto = _SA_ID.unpack_from(data)
        return cls(unpack_address(daddr, family), socket.ntohl(spi), family, proto)


_POLICY_TAIL = struct.Struct("=IIBBBB4x")  # priority index dir action flags share, padding to 168


@dataclass
class UserPolicyInfo:
    """``struct xfrm_userpolicy_info`` (168 bytes): the body of NEWPOLICY/UPDPOLICY, and the
    socket policy of ``IP_XFRM_POLICY``."""

    sel: Selector
    dir: int
    action: int = XFRM_POLICY_ALLOW
    priority: int = 0
    index: int = 0
    flags: int = 0
    share: int = 0
    lft: LifetimeCfg = field(default_factory=LifetimeCfg)
    curlft: LifetimeCur = field(default_factory=LifetimeCur)

    SIZE = 168

    def pack(self) -> bytes:
        return b"".join((self.sel.pack(), self.lft.pack(), self.curlft.pack(),
                         _POLICY_TAIL.pack(self.priority, self.index, self.dir, self.action, self.flags,
                                           self.share)))

    @classmethod
    def unpack(cls, data: bytes) -> "UserPolicyInfo":
        if len(data) < cls.SIZE:
            raise XfrmDecodeError("short xfrm_userpolicy_info")
        priority, index, direction, action, flags, share = _POLICY_TAIL.unpack_from(data, 152)
        return cls(Selector.unpack(data), direction, action, priority, index, flags, share,
                   LifetimeCfg.unpack(data[56:]), LifetimeCur.unpack(data[120:]))


_POLICY_ID_TAIL = struct.Struct("=IB3x")


@dataclass
class UserPolicyId:
    """``struct xfrm_userpolicy_id`` (64 bytes): names a policy by selector and direction
    (DELPOLICY, GETPOLICY)."""

    sel: Selector
    dir: int
    index: int = 0

    SIZE = 64

    def pack(self) -> bytes:
        return self.sel.pack() + _POLICY_ID_TAIL.pack(self.index, self.dir)

    @classmethod
    def unpack(cls, data: bytes) -> "UserPolicyId":
        if len(data) < cls.SIZE:
            raise XfrmDecodeError("short xfrm_userpolicy_id")
        index, direction = _POLICY_ID_TAIL.unpack_from(data, 56)
        return cls(Selector.unpack(data), direction, index)


_MAPPING_TAIL = struct.Struct("=I16s16sHH")


@dataclass
class UserMapping:
    """``struct xfrm_user_mapping`` (64 bytes): the kernel saw ESP-in-UDP of an SA arrive
    from a new address or port (a NAT mapping changed); sent to XFRMNLGRP_MAPPING."""

    id: UserSaId
    reqid: int
    old_saddr: str
    new_saddr: str
    old_sport: int
    new_sport: int

    SIZE = 64

    def pack(self) -> bytes:
        family = self.id.family
        return self.id.pack() + _MAPPING_TAIL.pack(self.reqid, pack_address(self.old_saddr, family),
                                                   pack_address(self.new_saddr, family),
                                                   socket.htons(self.old_sport), socket.htons(self.new_sport))

    @classmethod
    def unpack(cls, data: bytes) -> "UserMapping":
        if len(data) < cls.SIZE:
            raise XfrmDecodeError("short xfrm_user_mapping")
        sa_id = UserSaId.unpack(data)
        reqid, old, new, old_port, new_port = _MAPPING_TAIL.unpack_from(data, UserSaId.SIZE)
        return cls(sa_id, reqid, unpack_address(old, sa_id.family), unpack_address(new, sa_id.family),
                   socket.ntohs(old_port), socket.ntohs(new_port))


# -- attributes ------------------------------------------------------------------------------

_TMPL = struct.Struct("=16sIB3xH2x16sIBBBxIII")


@dataclass
class UserTmpl:
    """``struct xfrm_user_tmpl`` (64 bytes): the SA a policy wants, by addresses and reqid."""

    daddr: str
    saddr: str
    family: int
    reqid: int
    proto: int = IPPROTO_ESP
    spi: int = 0
    mode: int = XFRM_MODE_TUNNEL
    share: int = 0
    optional: int = 0
    aalgos: int = 0xFFFFFFFF
    ealgos: int = 0xFFFFFFFF
    calgos: int = 0xFFFFFFFF

    SIZE = _TMPL.size

    def pack(self) -> bytes:
        return _TMPL.pack(pack_address(self.daddr, self.family), socket.htonl(self.spi), self.proto,
                          self.family, pack_address(self.saddr, self.family), self.reqid, self.mode,
                          self.share, self.optional, self.aalgos, self.ealgos, self.calgos)

    @classmethod
    def unpack(cls, data: bytes) -> "UserTmpl":
        (daddr, spi, proto, family, saddr, reqid, mode, share, optional, aalgos, ealgos,
         calgos) = _TMPL.unpack_from(data)
        return cls(unpack_address(daddr, family), unpack_address(saddr, family), family, reqid, proto,
                   socket.ntohl(spi), mode, share, optional, aalgos, ealgos, calgos)


@dataclass
class Templates:
    """``XFRMA_TMPL``: one or more templates of a policy."""

    templates: list[UserTmpl]

    TYPE = XFRMA_TMPL

    def pack(self) -> bytes:
        return b"".join(t.pack() for t in self.templates)

    @classmethod
    def unpack(cls, data: bytes) -> "Templates":
        size = UserTmpl.SIZE
        return cls([UserTmpl.unpack(data[i:i + size]) for i in range(0, len(data) - size + 1, size)])


def _name(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("ascii", "replace")


_ALGO = struct.Struct("=64sI")
_ALGO2 = struct.Struct("=64sII")


@dataclass
class AlgoCrypt:
    """``XFRMA_ALG_CRYPT`` (``struct xfrm_algo``): a cipher by kernel name, e.g. ``cbc(aes)``."""

    name: str
    key: bytes = field(repr=False)

    TYPE = XFRMA_ALG_CRYPT

    def pack(self) -> bytes:
        return _ALGO.pack(self.name.encode(), len(self.key) * 8) + self.key

    @classmethod
    def unpack(cls, data: bytes) -> "AlgoCrypt":
        name, bits = _ALGO.unpack_from(data)
        return cls(_name(name), data[_ALGO.size:_ALGO.size + bits // 8])


@dataclass
class AlgoAuth:
    """``XFRMA_ALG_AUTH_TRUNC`` (``struct xfrm_algo_auth``): an integrity algorithm with its
    truncation, e.g. ``hmac(sha256)``/128."""

    name: str
    key: bytes = field(repr=False)
    trunc_len: int = 0  # bits

    TYPE = XFRMA_ALG_AUTH_TRUNC

    def pack(self) -> bytes:
        return _ALGO2.pack(self.name.encode(), len(self.key) * 8, self.trunc_len) + self.key

    @classmethod
    def unpack(cls, data: bytes) -> "AlgoAuth":
        name, bits, trunc = _ALGO2.unpack_from(data)
        return cls(_name(name), data[_ALGO2.size:_ALGO2.size + bits // 8], trunc)


@dataclass
class AlgoAead:
    """``XFRMA_ALG_AEAD`` (``struct xfrm_algo_aead``): e.g. ``rfc4106(gcm(aes))`` with the key
    followed by its 4-byte salt, and the ICV length in bits."""

    name: str
    key: bytes = field(repr=False)
    icv_len: int = 128  # bits

    TYPE = XFRMA_ALG_AEAD

    def pack(self) -> bytes:
        return _ALGO2.pack(self.name.encode(), len(self.key) * 8, self.icv_len) + self.key

    @classmethod
    def unpack(cls, data: bytes) -> "AlgoAead":
        name, bits, icv = _ALGO2.unpack_from(data)
        return cls(_name(name), data[_ALGO2.size:_ALGO2.size + bits // 8], icv)


_ENCAP = struct.Struct("=HHH2x16s")


@dataclass
class EncapTmpl:
    """``XFRMA_ENCAP`` (``struct xfrm_encap_tmpl``, 24 bytes): ESP in UDP between these ports."""

    sport: int
    dport: int
    type: int = UDP_ENCAP_ESPINUDP
    oa: str = ""
    oa_family: int = socket.AF_INET  # only to pack/unpack ``oa``

    TYPE = XFRMA_ENCAP

    def pack(self) -> bytes:
        return _ENCAP.pack(self.type, socket.htons(self.sport), socket.htons(self.dport),
                           pack_address(self.oa, self.oa_family))

    @classmethod
    def unpack(cls, data: bytes) -> "EncapTmpl":
        kind, sport, dport, oa = _ENCAP.unpack_from(data)
        address = unpack_address(oa, socket.AF_INET) if any(oa) else ""
        return cls(socket.ntohs(sport), socket.ntohs(dport), kind, address)


_REPLAY = struct.Struct("=III")


@dataclass
class ReplayState:
    """``XFRMA_REPLAY_VAL`` (``struct xfrm_replay_state``): sequence numbers of a legacy
    (at most 32 packets, no ESN) replay window."""

    oseq: int = 0
    seq: int = 0
    bitmap: int = 0

    TYPE = XFRMA_REPLAY_VAL

    def pack(self) -> bytes:
        return _REPLAY.pack(self.oseq, self.seq, self.bitmap)

    @classmethod
    def unpack(cls, data: bytes) -> "ReplayState":
        return cls(*_REPLAY.unpack_from(data))


_ESN = struct.Struct("=6I")


@dataclass
class ReplayEsn:
    """``XFRMA_REPLAY_ESN_VAL`` (``struct xfrm_replay_state_esn``): sequence numbers (with
    their high halves) and a replay window of ``replay_window`` packets, ``bmp_len`` words."""

    replay_window: int
    oseq: int = 0
    seq: int = 0
    oseq_hi: int = 0
    seq_hi: int = 0
    bmp: tuple[int, ...] = ()

    TYPE = XFRMA_REPLAY_ESN_VAL

    @property
    def bmp_len(self) -> int:
        return (self.replay_window + 31) // 32

    def pack(self) -> bytes:
        words = tuple(self.bmp) + (0,) * (self.bmp_len - len(self.bmp))
        return (_ESN.pack(self.bmp_len, self.oseq, self.seq, self.oseq_hi, self.seq_hi, self.replay_window)
                + struct.pack(f"={self.bmp_len}I", *words[:self.bmp_len]))

    @classmethod
    def unpack(cls, data: bytes) -> "ReplayEsn":
        bmp_len, oseq, seq, oseq_hi, seq_hi, window = _ESN.unpack_from(data)
        bmp = struct.unpack_from(f"={bmp_len}I", data, _ESN.size) if len(data) >= _ESN.size + 4 * bmp_len else ()
        return cls(window, oseq, seq, oseq_hi, seq_hi, tuple(bmp))


@dataclass
class LastUsed:
    """``XFRMA_LASTUSED``: wall-clock second of the SA's last packet (only present once used)."""

    time: int

    TYPE = XFRMA_LASTUSED

    def pack(self) -> bytes:
        return struct.pack("=Q", self.time)

    @classmethod
    def unpack(cls, data: bytes) -> "LastUsed":
        return cls(struct.unpack_from("=Q", data)[0])


@dataclass
class RawAttr:
    """An attribute this module does not interpret, kept as bytes."""

    type: int
    data: bytes

    def pack(self) -> bytes:
        return self.data


_ATTRIBUTES = {cls.TYPE: cls for cls in (Templates, AlgoCrypt, AlgoAuth, AlgoAead, EncapTmpl, ReplayState,
                                         ReplayEsn, LastUsed)}


def find(attrs, cls):
    """The first attribute of class ``cls`` in ``attrs``, None if there is none."""
    for attr in attrs:
        if isinstance(attr, cls):
            return attr
    return None


# -- messages ----------------------------------------------------------------------------------

_BODIES = {
    XFRM_MSG_NEWSA: UserSaInfo, XFRM_MSG_UPDSA: UserSaInfo,
    XFRM_MSG_DELSA: UserSaId, XFRM_MSG_GETSA: UserSaId,
    XFRM_MSG_NEWPOLICY: UserPolicyInfo, XFRM_MSG_UPDPOLICY: UserPolicyInfo,
    XFRM_MSG_DELPOLICY: UserPolicyId, XFRM_MSG_GETPOLICY: UserPolicyId,
    XFRM_MSG_MAPPING: UserMapping,
}
# a DELPOLICY notification (to listeners) carries a policy id like the request


@dataclass
class Message:
    """One netlink message.  ``body`` is the fixed structure of the type (None for dump
    requests and DONE); ``error`` is the errno of an NLMSG_ERROR (0 = ACK), negative as the
    kernel sends it; ``attrs`` the typed attributes."""

    type: int
    body: object = None
    attrs: list = field(default_factory=list)
    flags: int = NLM_F_REQUEST
    seq: int = 0
    pid: int = 0
    error: int | None = None


def _pack_attr(attr) -> bytes:
    payload = attr.pack()
    kind = attr.type if isinstance(attr, RawAttr) else attr.TYPE
    data = NLA_HDR.pack(NLA_HDR.size + len(payload), kind) + payload
    return data + bytes(_align(len(data)) - len(data))


def encode(message: Message) -> bytes:
    """The netlink bytes of ``message`` (header length filled in)."""
    if message.type == NLMSG_ERROR:
        payload = struct.pack("=i", message.error or 0) + (message.body or bytes(NLMSGHDR.size))
    else:
        payload = message.body.pack() if message.body is not None else b""
    payload += bytes(_align(len(payload)) - len(payload))
    payload += b"".join(_pack_attr(a) for a in message.attrs)
    return NLMSGHDR.pack(NLMSGHDR.size + len(payload), message.type, message.flags, message.seq,
                         message.pid) + payload


def _attributes(data: bytes) -> list:
    attrs = []
    offset = 0
    while offset + NLA_HDR.size <= len(data):
        length, kind = NLA_HDR.unpack_from(data, offset)
        if length < NLA_HDR.size or offset + length > len(data):
            raise XfrmDecodeError(f"bad attribute length {length} at {offset}")
        payload = data[offset + NLA_HDR.size:offset + length]
        kind &= 0x3FFF  # NLA_F_NESTED / NLA_F_NET_BYTEORDER
        cls = _ATTRIBUTES.get(kind)
        try:
            attrs.append(cls.unpack(payload) if cls is not None else RawAttr(kind, payload))
        except struct.error as exc:
            raise XfrmDecodeError(f"attribute {kind}: {exc}") from None
        offset += _align(length)
    return attrs


def decode_all(data: bytes) -> Iterator[Message]:
    """Every netlink message in one datagram from the kernel."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, flags, seq, pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > len(data):
            raise XfrmDecodeError(f"bad netlink message length {length}")
        payload = data[offset + NLMSGHDR.size:offset + length]
        yield _decode_payload(kind, flags, seq, pid, payload)
        offset += _align(length)


def decode(data: bytes) -> Message:
    """The single message in ``data``."""
    messages = list(decode_all(data))
    if len(messages) != 1:
        raise XfrmDecodeError(f"expected one message, found {len(messages)}")
    return messages[0]


def _decode_payload(kind: int, flags: int, seq: int, pid: int, payload: bytes) -> Message:
    if kind == NLMSG_ERROR:
        if len(payload) < 4:
            raise XfrmDecodeError("short NLMSG_ERROR")
        return Message(kind, payload[4:4 + NLMSGHDR.size], [], flags, seq, pid,
                       struct.unpack_from("=i", payload)[0])
    if kind in (NLMSG_DONE, NLMSG_NOOP):
        error = struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
        return Message(kind, None, [], flags, seq, pid, error)
    body_cls = _BODIES.get(kind)
    if body_cls is None:
        return Message(kind, payload, [], flags, seq, pid)
    if not payload:  # a dump request
        return Message(kind, None, [], flags, seq, pid)
    if len(payload) < body_cls.SIZE:
        raise XfrmDecodeError(f"message type {kind:#x}: {len(payload)} bytes, body needs {body_cls.SIZE}")
    body = body_cls.unpack(payload)
    return Message(kind, body, _attributes(payload[_align(body_cls.SIZE):]), flags, seq, pid)
