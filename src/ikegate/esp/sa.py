"""ESP packet protection for one Security Association (RFC 4303).

:class:`EspSa` turns an inner IP packet into the ESP packet ``SPI | Sequence Number | IV |
ciphertext(payload | padding | Pad Length | Next Header) | ICV`` and back.  The bytes in and
out start at the SPI: the outer IP header, and the UDP header of NAT traversal (RFC 3948),
belong to the caller.  Nothing here does I/O, so the data plane calls it for every packet;
the code is arranged for that:

* Cipher and MAC objects are built once per SA: one ``AESGCM``/``ChaCha20Poly1305`` object,
  one pre-keyed HMAC whose state is ``copy()``-ed per packet (saves the two key-block
  compressions), and for CBC one encryptor and one decryptor context for the whole life of
  the SA (see :class:`_CbcSa` for why that is sound).
* The two families (AEAD, CBC + HMAC) are separate subclasses chosen by ``EspSa(...)``
  itself, so the per-packet path carries no algorithm branches.

Inbound order (RFC 4303 3.4): length and SPI, replay check (before the ICV, it is cheaper),
ICV in constant time (``hmac.compare_digest``, or the AEAD tag check) before anything is
decrypted or looked at, then padding and Next Header; the replay window moves and the
counters count only when the whole packet is accepted.

One SA object is meant for one direction, as IPsec SAs are, but both directions work on
the same object (tests use that).  Outbound state (``seq_out``, the encryptor, the outbound
counters) is touched only by :meth:`EspSa.encapsulate` and inbound state (the replay
window, the decryptor, the inbound counters) only by :meth:`EspSa.decapsulate`: one thread
per direction is safe, two threads on the same direction are not.
"""

from __future__ import annotations

import os
import struct
import time
from hmac import compare_digest

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ikegate.esp.algorithms import ENCRYPTION, INTEGRITY, EncrAlgorithm
from ikegate.esp.errors import (
    DROP_DUMMY,
    DROP_ICV,
    DROP_LENGTH,
    DROP_NEXT_HEADER,
    DROP_PADDING,
    DROP_REPLAY,
    DROP_SEQ_OVERFLOW,
    DROP_SHORT,
    DROP_UNKNOWN_SPI,
    EspError,
)
from ikegate.esp.replay import DEFAULT_WINDOW, ReplayWindow
from ikegate.wire.constants import EncrId, IntegId

__all__ = [
    "NEXT_HEADER_IPV4",
    "NEXT_HEADER_IPV6",
    "NEXT_HEADER_NONE",
    "EspSa",
    "next_header_for",
]

NEXT_HEADER_IPV4 = 4  # IP-in-IP: tunnel mode with an IPv4 packet inside
NEXT_HEADER_IPV6 = 41
NEXT_HEADER_NONE = 59  # "no next header": a TFC dummy packet (RFC 4303 2.6)

_LOW32 = 0xFFFFFFFF
_SEQ_MAX_32 = _LOW32  # RFC 4303 3.3.3: the counter must not cycle; rekey before it does
_SEQ_MAX_64 = (1 << 64) - 1

_pack_header = struct.Struct("!4sI").pack  # SPI bytes, low 32 bits of the sequence number
_pack_u32 = struct.Struct("!I").pack
_pack_u64 = struct.Struct("!Q").pack
_unpack_u32 = struct.Struct("!I").unpack_from
_monotonic = time.monotonic

# Padding bytes 1, 2, 3, ... (RFC 4303 2.4), by pad length.
_PADS = tuple(bytes(range(1, n + 1)) for n in range(256))
# Padding | Pad Length | Next Header: per next header, a tuple indexed by pad length
# (minimal padding is at most one cipher block minus one: 0..15).  Filled lazily.
_TRAILERS: dict[int, tuple[bytes, ...]] = {}
_MAX_PAD = 15
# Tunnel mode: the IP version the inner packet must have for each Next Header value.
_TUNNEL_VERSION = {NEXT_HEADER_IPV4: 4, NEXT_HEADER_IPV6: 6}
_NEXT_HEADER_BY_VERSION = {4: NEXT_HEADER_IPV4, 6: NEXT_HEADER_IPV6}

_RANDOM_POOL = 4096  # bytes of os.urandom drawn at a time for CBC first blocks


def next_header_for(inner: bytes) -> int:
    """Next Header value for tunnelling ``inner``: 4 for IPv4, 41 for IPv6 (by version nibble)."""
    if not inner:
        raise EspError(DROP_SHORT)
    next_header = _NEXT_HEADER_BY_VERSION.get(inner[0] >> 4)
    if next_header is None:
        raise EspError(DROP_NEXT_HEADER)
    return next_header


def _trailer(pad: int, next_header: int) -> bytes:
    """Padding 1..pad, Pad Length and Next Header (``pad`` <= 15)."""
    table = _TRAILERS.get(next_header)
    if table is None:
        if not 0 <= next_header <= 255:
            raise ValueError(f"next header must be 0..255, not {next_header}")
        table = _TRAILERS[next_header] = tuple(
            _PADS[n] + bytes((n, next_header)) for n in range(_MAX_PAD + 1)
        )
    return table[pad]


def _strip_trailer(plain: bytes, start: int, tunnel: bool) -> tuple[bytes, int]:
    """Check and remove padding, Pad Length and Next Header from ``plain[start:]``.

    Returns ``(inner packet, next header)``.  ``start`` skips a leading block that is not
    payload (the CBC resynchronisation block).
    """
    size = len(plain)
    pad = plain[-2]
    next_header = plain[-1]
    end = size - 2 - pad
    if end < start:
        raise EspError(DROP_PADDING)
    if pad and plain[end : size - 2] != _PADS[pad]:
        raise EspError(DROP_PADDING)
    if next_header == NEXT_HEADER_NONE:
        raise EspError(DROP_DUMMY)
    if tunnel and (end == start or _TUNNEL_VERSION.get(next_header) != plain[start] >> 4):
        raise EspError(DROP_NEXT_HEADER)
    return plain[start:end], next_header


class EspSa:
    """One ESP Security Association: keys, sequence numbers, replay window and counters.

    ``encr_id``/``key_bits`` and ``integ_id`` are IKEv2 transform numbers
    (:class:`~ikegate.wire.constants.EncrId`, :class:`~ikegate.wire.constants.IntegId`).
    ``encr_key`` is the encryption part of the KEYMAT as IKEv2 derives it: for AES-GCM and
    ChaCha20-Poly1305 that is the key followed by the 4-byte salt.  AEAD ciphers take no
    integrity transform (``integ_id`` None or ``IntegId.NONE``); CBC ciphers need one unless
    ``allow_no_integrity`` (encryption-only ESP; only for known-answer tests and oddities).
    For ciphers whose key length IKE does not negotiate (3DES, ChaCha20) ``key_bits`` may
    be 0.

    ``esn`` enables 64-bit extended sequence numbers (RFC 4303 2.2.1); ``replay_window`` is
    the inbound window size in packets.  With ``tunnel`` (the default) decapsulation accepts
    only Next Header 4 with an IPv4 packet inside or 41 with IPv6; without it, any Next
    Header but 59 (transport mode).

    Counters: ``packets_in``/``bytes_in`` and ``packets_out``/``bytes_out`` count accepted
    packets and their inner (plaintext) bytes; ``last_in`` is the ``time.monotonic()`` of
    the last accepted inbound packet (``None`` before the first; the caller may also set
    it); ``seq_out`` is the last sequence number sent (0 before the first packet).
    """

    spi: int
    esn: bool
    tunnel: bool
    replay: ReplayWindow
    seq_out: int
    packets_in: int
    bytes_in: int
    packets_out: int
    bytes_out: int
    last_in: float | None

    def __new__(cls, spi: int, encr_id: int, *args: object, **kwargs: object) -> EspSa:
        if cls is EspSa:
            algorithm = ENCRYPTION.get(encr_id)
            if algorithm is None:
                raise ValueError(f"unsupported ESP encryption transform {_encr_name(encr_id)}")
            cls = _AeadSa if algorithm.aead else _CbcSa
        return super().__new__(cls)

    def __init__(
        self,
        spi: int,
        encr_id: int,
        key_bits: int,
        encr_key: bytes,
        integ_id: int | None,
        integ_key: bytes | None,
        *,
        esn: bool = False,
        replay_window: int = DEFAULT_WINDOW,
        tunnel: bool = True,
        allow_no_integrity: bool = False,
    ) -> None:
        if not 0 <= spi <= _LOW32:
            raise ValueError(f"SPI must be a 32-bit value, not {spi}")
        algorithm = ENCRYPTION.get(encr_id)
        if algorithm is None:
            raise ValueError(f"unsupported ESP encryption transform {_encr_name(encr_id)}")
        if algorithm.fixed_key and key_bits == 0:
            key_bits = algorithm.key_bits[0]
        if key_bits not in algorithm.key_bits:
            raise ValueError(f"{algorithm.encr_id.name} does not take a {key_bits}-bit key")
        key_len = key_bits // 8 + algorithm.salt_len
        if len(encr_key) != key_len:
            raise ValueError(
                f"{algorithm.encr_id.name}-{key_bits} needs {key_len} bytes of key material,"
                f" got {len(encr_key)}"
            )
        self.spi = spi
        self.encr_id = algorithm.encr_id
        self.key_bits = key_bits
        self.integ_id = IntegId(integ_id) if integ_id else None
        self.esn = esn
        self.tunnel = tunnel
        self.replay = ReplayWindow(replay_window, esn=esn)
        self.seq_out = 0
        self.packets_in = 0
        self.bytes_in = 0
        self.packets_out = 0
        self.bytes_out = 0
        self.last_in = None
        self._spi_bytes = _pack_u32(spi)
        self._seq_max = _SEQ_MAX_64 if esn else _SEQ_MAX_32
        self._block = algorithm.block_size
        self._setup(algorithm, bytes(encr_key), integ_id or None, integ_key, allow_no_integrity)

    def _setup(
        self,
        algorithm: EncrAlgorithm,
        encr_key: bytes,
        integ_id: int | None,
        integ_key: bytes | None,
        allow_no_integrity: bool,
    ) -> None:
        raise NotImplementedError

    def encapsulate(self, inner: bytes, next_header: int) -> bytes:
        """Protect ``inner`` (tunnel mode: a whole IP packet) and return the ESP packet.

        Raises :class:`EspError` with ``DROP_SEQ_OVERFLOW`` once the sequence numbers are
        used up (the SA must be rekeyed before that).
        """
        raise NotImplementedError

    def decapsulate(self, packet: bytes) -> tuple[bytes, int]:
        """Verify and decrypt the ESP ``packet``; return ``(inner packet, next header)``.

        Raises :class:`EspError`; a dropped packet changes neither the replay window nor
        the counters.
        """
        raise NotImplementedError

    def _take_seq(self) -> int:
        """The next outbound sequence number (RFC 4303 3.3.3: the first packet has 1)."""
        seq = self.seq_out + 1
        if seq > self._seq_max:
            raise EspError(DROP_SEQ_OVERFLOW)
        self.seq_out = seq
        return seq

    def __repr__(self) -> str:
        integ = f"/{self.integ_id.name}" if self.integ_id else ""
        return (
            f"<{type(self).__name__} spi=0x{self.spi:08x} {self.encr_id.name}-{self.key_bits}"
            f"{integ} esn={self.esn} seq_out={self.seq_out}>"
        )


class _AeadSa(EspSa):
    """AES-GCM (RFC 4106) and ChaCha20-Poly1305 (RFC 7634).

    Nonce = salt (last 4 bytes of the key material) | 8-byte IV.  The IV is the 64-bit
    sequence number of the packet, the counter RFC 4106 3.1 suggests: unique per key as
    long as the SA lives, and free (no random draw).  AAD = SPI | low 32 bits of the
    sequence number, or SPI | high 32 | low 32 with ESN (RFC 4106 5, RFC 7634 2.1).
    Padding aligns payload + trailer to 4 bytes.
    """

    def _setup(self, algorithm, encr_key, integ_id, integ_key, allow_no_integrity):
        if integ_id is not None:
            raise ValueError(f"{algorithm.encr_id.name} takes no integrity transform")
        key, self._salt = encr_key[:-4], encr_key[-4:]
        if algorithm.encr_id == EncrId.CHACHA20_POLY1305:
            self._aead = ChaCha20Poly1305(key)
        elif algorithm.icv_len == 16:
            self._aead = AESGCM(key)
        else:
            self._aead = _TruncatedGcm(key, algorithm.icv_len)
        self._icv_len = algorithm.icv_len
        # SPI, sequence number, IV, at least Pad Length and Next Header, ICV.
        self._min_len = 8 + 8 + 2 + algorithm.icv_len

    def encapsulate(self, inner: bytes, next_header: int) -> bytes:
        seq = self._take_seq()
        return self._seal(seq, _pack_u64(seq), inner, next_header)

    def _seal(self, seq: int, iv: bytes, inner: bytes, next_header: int) -> bytes:
        spi = self._spi_bytes
        header = _pack_header(spi, seq & _LOW32)
        aad = spi + _pack_u64(seq) if self.esn else header
        size = len(inner)
        pad = -(size + 2) & 3
        plain = b"".join((inner, _trailer(pad, next_header)))  # (join: inner may be a view)
        sealed = self._aead.encrypt(self._salt + iv, plain, aad)
        self.packets_out += 1
        self.bytes_out += size
        return b"".join((header, iv, sealed))

    def _encapsulate_with_iv(self, inner: bytes, next_header: int, iv: bytes) -> bytes:
        """Test hook: like :meth:`encapsulate` but with a chosen 8-byte IV (known answers)."""
        if len(iv) != 8:
            raise ValueError("the IV of AES-GCM/ChaCha20-Poly1305 ESP has 8 bytes")
        return self._seal(self._take_seq(), bytes(iv), inner, next_header)

    def decapsulate(self, packet: bytes) -> tuple[bytes, int]:
        if len(packet) < self._min_len:
            raise EspError(DROP_SHORT)
        if packet[:4] != self._spi_bytes:
            raise EspError(DROP_UNKNOWN_SPI)
        seq = self.replay.check(_unpack_u32(packet, 4)[0])
        if seq is None:
            raise EspError(DROP_REPLAY)
        aad = self._spi_bytes + _pack_u64(seq) if self.esn else packet[:8]
        try:
            plain = self._aead.decrypt(self._salt + packet[8:16], packet[16:], aad)
        except InvalidTag:
            raise EspError(DROP_ICV) from None
        inner, next_header = _strip_trailer(plain, 0, self.tunnel)
        self.replay.update(seq)
        self.packets_in += 1
        self.bytes_in += len(inner)
        self.last_in = _monotonic()
        return inner, next_header


class _TruncatedGcm:
    """AES-GCM with an 8 or 12-byte tag, behind the ``AESGCM`` encrypt/decrypt interface.

    ``AESGCM`` only does 16-byte tags.  A truncated GCM tag is the first bytes of the full
    one (NIST SP 800-38D 5.2.1.2), so sealing truncates; opening needs a ``Cipher`` object
    per packet (a few microseconds more).  strongSwan and the usual clients propose the
    16-byte ICV, so this path is for completeness, not speed.
    """

    def __init__(self, key: bytes, tag_len: int) -> None:
        self._aead = AESGCM(key)
        self._algorithm = algorithms.AES(key)
        self._tag_len = tag_len
        self._cut = tag_len - 16

    def encrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return self._aead.encrypt(nonce, data, aad)[: self._cut]

    def decrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        split = len(data) - self._tag_len
        mode = modes.GCM(nonce, bytes(data[split:]), min_tag_length=self._tag_len)
        decryptor = Cipher(self._algorithm, mode).decryptor()
        decryptor.authenticate_additional_data(aad)
        plain = decryptor.update(data[:split])
        return plain + decryptor.finalize()


class _CbcSa(EspSa):
    """AES-CBC (RFC 3602) and 3DES-CBC (RFC 2451) with an HMAC integrity transform.

    The ICV is the truncated HMAC over SPI | sequence number | IV | ciphertext, plus the
    high 32 bits of the sequence number with ESN, which are not sent (RFC 4303 2.2.1,
    3.3.2.1).  Padding aligns payload + trailer to the cipher block.

    One CBC context for the whole SA instead of a new ``Cipher(...).encryptor()`` per
    packet, which costs more than encrypting a 1400-byte packet:

    * Outbound, every packet is fed to the one continuous encryptor preceded by a fresh
      random block R.  Its ciphertext C0 = E(K, R xor C_prev) is uniformly random and
      unpredictable (R is fresh randomness, K is secret), and the following blocks are
      chained from C0, so C0 followed by the rest is exactly a CBC encryption of the
      payload under the IV C0: the packet carries C0 as its IV.  This meets RFC 3602 3
      ("The IV MUST be chosen at random, and MUST be unpredictable"); it costs one extra
      block and one block of randomness, drawn from ``os.urandom`` 4 KiB at a time.
    * Inbound, the continuous decryptor is fed IV | ciphertext.  The first output block is
      D(K, IV) xor C_prev, meaningless, and is dropped; from then on the chaining value is
      the packet's IV, so the rest decrypts correctly.  Only packets whose length is a
      whole number of blocks (and whose ICV verified) reach the decryptor, so it never
      holds a partial block across packets.
    """

    def _setup(self, algorithm, encr_key, integ_id, integ_key, allow_no_integrity):
        if algorithm.encr_id == EncrId.TRIPLE_DES:
            self._algorithm = TripleDES(encr_key)
        else:
            self._algorithm = algorithms.AES(encr_key)
        block = algorithm.block_size
        self._encryptor = Cipher(self._algorithm, modes.CBC(os.urandom(block))).encryptor()
        self._decryptor = Cipher(self._algorithm, modes.CBC(bytes(block))).decryptor()
        self._random = b""
        self._random_pos = 0
        if integ_id is None:
            if not allow_no_integrity:
                raise ValueError(f"{algorithm.encr_id.name} needs an integrity transform")
            self._mac = None
            self._icv_len = 0
        else:
            integrity = INTEGRITY.get(integ_id)
            if integrity is None:
                raise ValueError(f"unsupported ESP integrity transform {_integ_name(integ_id)}")
            if integ_key is None or len(integ_key) != integrity.key_len:
                raise ValueError(
                    f"{integrity.integ_id.name} needs a {integrity.key_len}-byte key"
                )
            self._mac = crypto_hmac.HMAC(bytes(integ_key), integrity.hash())
            self._icv_len = integrity.icv_len
        # SPI, sequence number, IV, one block of ciphertext, ICV.
        self._min_len = 8 + 2 * block + self._icv_len

    def encapsulate(self, inner: bytes, next_header: int) -> bytes:
        seq = self._take_seq()
        block = self._block
        pos = self._random_pos
        if pos + block > len(self._random):
            self._random = os.urandom(_RANDOM_POOL)
            pos = 0
        self._random_pos = pos + block
        pad = -(len(inner) + 2) % block
        body = self._encryptor.update(
            b"".join((self._random[pos : pos + block], inner, _trailer(pad, next_header)))
        )
        return self._protect(seq, body, len(inner))

    def _encapsulate_with_iv(self, inner: bytes, next_header: int, iv: bytes) -> bytes:
        """Test hook: like :meth:`encapsulate` but with a chosen IV (RFC 3602 known answers).

        Uses a one-off CBC context; the SA's continuous one is left as it was.
        """
        if len(iv) != self._block:
            raise ValueError(f"the IV of this cipher has {self._block} bytes")
        seq = self._take_seq()
        pad = -(len(inner) + 2) % self._block
        encryptor = Cipher(self._algorithm, modes.CBC(bytes(iv))).encryptor()
        body = bytes(iv) + encryptor.update(b"".join((inner, _trailer(pad, next_header))))
        return self._protect(seq, body, len(inner))

    def _protect(self, seq: int, body: bytes, inner_len: int) -> bytes:
        """Prepend the ESP header to IV | ciphertext and append the ICV."""
        header = _pack_header(self._spi_bytes, seq & _LOW32)
        self.packets_out += 1
        self.bytes_out += inner_len
        if self._mac is None:
            return header + body
        mac = self._mac.copy()
        mac.update(header)
        mac.update(body)
        if self.esn:
            mac.update(_pack_u32(seq >> 32))
        return b"".join((header, body, mac.finalize()[: self._icv_len]))

    def decapsulate(self, packet: bytes) -> tuple[bytes, int]:
        size = len(packet)
        if size < self._min_len:
            raise EspError(DROP_SHORT)
        end = size - self._icv_len
        if (end - 8) % self._block:
            raise EspError(DROP_LENGTH)
        if packet[:4] != self._spi_bytes:
            raise EspError(DROP_UNKNOWN_SPI)
        seq = self.replay.check(_unpack_u32(packet, 4)[0])
        if seq is None:
            raise EspError(DROP_REPLAY)
        # (Bytes slices: cryptography takes them faster than memoryviews.)
        if self._mac is not None:
            mac = self._mac.copy()
            mac.update(packet[:end])
            if self.esn:
                mac.update(_pack_u32(seq >> 32))
            if not compare_digest(mac.finalize()[: self._icv_len], packet[end:]):
                raise EspError(DROP_ICV)
        # The first output block only re-synchronises the chain on this packet's IV.
        plain = self._decryptor.update(packet[8:end])
        inner, next_header = _strip_trailer(plain, self._block, self.tunnel)
        self.replay.update(seq)
        self.packets_in += 1
        self.bytes_in += len(inner)
        self.last_in = _monotonic()
        return inner, next_header


def _encr_name(encr_id: int) -> str:
    try:
        return EncrId(encr_id).name
    except ValueError:
        return str(encr_id)


def _integ_name(integ_id: int) -> str:
    try:
        return IntegId(integ_id).name
    except ValueError:
        return str(integ_id)
