"""The key log of ``ikegate start --keylog DIR``: every SA's keys as Wireshark decryption tables.

**A debugging aid that defeats the VPN's confidentiality**: whoever reads these files can
decrypt every captured IKE message and ESP packet of the SAs listed.  It is off unless
``--keylog`` is given, the daemon warns loudly when it is on, the directory is private
(mode 0700, refused when others may enter it) and the files are 0600.

Two files in Wireshark's "user accessible table" (UAT) format are appended to as SAs come
up, one line per SA, each with a comment line naming it before:

``ikev2_decryption_table`` (Wireshark: Protocols > ISAKMP > IKEv2 Decryption Table), one
line per IKE SA (set up by a client, or made by a rekey)::

    SPIi,SPIr,SK_ei,SK_er,"encryption algorithm",SK_ai,SK_ar,"integrity algorithm"

``esp_sa`` (Protocols > ESP > ESP SAs), one line per CHILD SA direction, again when MOBIKE
or a NAT moves an SA to other addresses::

    "IPv4","src","dst","0xSPI","encryption algorithm","0xkey","authentication algorithm","0xkey"

The algorithm names are the strings of Wireshark 4.0 (``vs_ikev2_encr_algs`` and
``vs_ikev2_auth_algs`` of epan/dissectors/packet-isakmp.c, ``esp_encryption_type_vals``
and ``esp_authentication_type_vals`` of packet-ipsec.c), checked against tshark 4.0.17:
a name tshark does not know makes it refuse the whole table ("Error loading table").  An
SA whose algorithm Wireshark cannot decrypt (ChaCha20-Poly1305, for instance) gets only a
comment line with its SPIs and the reason; AES-XCBC and AES-CMAC integrity are written as
Wireshark's "ANY 96 bits, no checking", so decryption still works without the ICV check.
Wireshark 4.0 knows nothing of extended sequence numbers: an ESN SA's packets decrypt, but
their ICV is shown as incorrect (the high 32 bits of the sequence number are left out; seen
with tshark 4.0.17 for AES-CBC/HMAC and AES-GCM).  AES-GCM keys include their 4-byte salt,
as Wireshark expects.

Using it (both tables are read from Wireshark's personal configuration directory)::

    WIRESHARK_CONFIG_DIR=DIR tshark -r capture.pcapng \\
        -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE

or copy the two files into a profile (``~/.config/wireshark/profiles/NAME/``, then
``wireshark -C NAME``, enabling ESP decryption in its preferences), or give single
entries with ``tshark -o 'uat:esp_sa:"IPv4","...",...'``.  ESP-in-UDP on port 4500 is
decoded by Wireshark without further options.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from ikegate.ike.events import ChildSaInfo, ChildSaUp, ChildSaUpdated, IkeSaKeys
from ikegate.log import get_logger
from ikegate.wire.constants import EncrId, IntegId

__all__ = [
    "ESP_FILE",
    "IKEV2_FILE",
    "KeyLog",
    "KeyLogError",
    "esp_lines",
    "ikev2_line",
    "WARNING",
]

log = get_logger("dmn")

IKEV2_FILE = "ikev2_decryption_table"
ESP_FILE = "esp_sa"

WARNING = ("WARNING: --keylog {directory}: the IKE and ESP keys of every SA are written to this "
           "directory; anyone who can read them can decrypt all captured VPN traffic of these SAs. "
           "For debugging only: do not leave it on, and delete the files after use.")

_HEADER = ("# ikegate key log, Wireshark's {table} table.  SECRET: these keys decrypt the VPN traffic\n"
           "# of the SAs listed; delete this file after use.  One line per SA, appended as SAs come up.\n")

# -- Wireshark 4.0's names ---------------------------------------------------------------------

# packet-isakmp.c vs_ikev2_encr_algs: (IKEv2 transform ID, key bits) -> name
_IKEV2_ENCR: dict[tuple[int, int], str] = {
    (EncrId.TRIPLE_DES, 0): "3DES [RFC2451]",
    (EncrId.TRIPLE_DES, 192): "3DES [RFC2451]",
    (EncrId.NULL, 0): "NULL [RFC2410]",
}
for _bits in (128, 192, 256):
    _IKEV2_ENCR[(EncrId.AES_CBC, _bits)] = f"AES-CBC-{_bits} [RFC3602]"
    _IKEV2_ENCR[(EncrId.AES_CTR, _bits)] = f"AES-CTR-{_bits} [RFC5930]"
    for _alg, _mode, _icv in ((EncrId.AES_GCM_8, "GCM", 8), (EncrId.AES_GCM_12, "GCM", 12),
                              (EncrId.AES_GCM_16, "GCM", 16), (EncrId.AES_CCM_8, "CCM", 8),
                              (EncrId.AES_CCM_12, "CCM", 12), (EncrId.AES_CCM_16, "CCM", 16)):
        _IKEV2_ENCR[(_alg, _bits)] = f"AES-{_mode}-{_bits} with {_icv} octet ICV [RFC5282]"

# packet-isakmp.c vs_ikev2_auth_algs: IKEv2 integrity transform ID (None: AEAD) -> name
_IKEV2_NO_CHECK_96 = "ANY 96-bits of Authentication [No Checking]"
_IKEV2_INTEG: dict[int | None, str] = {
    None: "NONE [RFC4306]",
    IntegId.NONE: "NONE [RFC4306]",
    IntegId.HMAC_MD5_96: "HMAC_MD5_96 [RFC2403]",
    IntegId.HMAC_SHA1_96: "HMAC_SHA1_96 [RFC2404]",
    IntegId.HMAC_MD5_128: "HMAC_MD5_128 [RFC4595]",
    IntegId.HMAC_SHA1_160: "HMAC_SHA1_160 [RFC4595]",
    IntegId.HMAC_SHA2_256_128: "HMAC_SHA2_256_128 [RFC4868]",
    IntegId.HMAC_SHA2_384_192: "HMAC_SHA2_384_192 [RFC4868]",
    IntegId.HMAC_SHA2_512_256: "HMAC_SHA2_512_256 [RFC4868]",
    IntegId.AES_XCBC_96: _IKEV2_NO_CHECK_96,  # not in Wireshark: decrypt, skip the ICV check
    IntegId.AES_CMAC_96: _IKEV2_NO_CHECK_96,
}

# packet-ipsec.c esp_encryption_type_vals: ESP transform ID -> name (any key size)
_ESP_ENCR: dict[int, str] = {
    EncrId.NULL: "NULL",
    EncrId.TRIPLE_DES: "TripleDES-CBC [RFC2451]",
    EncrId.AES_CBC: "AES-CBC [RFC3602]",
    EncrId.AES_CTR: "AES-CTR [RFC3686]",
    EncrId.DES: "DES-CBC [RFC2405]",
    EncrId.CAST: "CAST5-CBC [RFC2144]",
    EncrId.BLOWFISH: "BLOWFISH-CBC [RFC2451]",
    EncrId.AES_GCM_8: "AES-GCM with 8 octet ICV [RFC4106]",
    EncrId.AES_GCM_12: "AES-GCM with 12 octet ICV [RFC4106]",
    EncrId.AES_GCM_16: "AES-GCM with 16 octet ICV [RFC4106]",
}

# packet-ipsec.c esp_authentication_type_vals: ESP integrity transform ID (None: AEAD) -> name
_ESP_NO_CHECK_96 = "ANY 96 bit authentication [no checking]"
_ESP_AUTH: dict[int | None, str] = {
    None: "NULL",
    IntegId.NONE: "NULL",
    IntegId.HMAC_SHA1_96: "HMAC-SHA-1-96 [RFC2404]",
    IntegId.HMAC_SHA2_256_128: "HMAC-SHA-256-128 [RFC4868]",
    IntegId.HMAC_SHA2_384_192: "HMAC-SHA-384-192 [RFC4868]",
    IntegId.HMAC_SHA2_512_256: "HMAC-SHA-512-256 [RFC4868]",
    IntegId.HMAC_MD5_96: "HMAC-MD5-96 [RFC2403]",
    IntegId.AES_XCBC_96: _ESP_NO_CHECK_96,  # not in Wireshark: decrypt, skip the ICV check
    IntegId.AES_CMAC_96: _ESP_NO_CHECK_96,
}


def _transform_name(enum, value: int | None) -> str:
    if value is None:
        return "none"
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def _comment(stamp: str, text: str) -> str:
    return f"# {stamp} {text}\n" if stamp else f"# {text}\n"


def ikev2_line(event: IkeSaKeys, *, stamp: str = "") -> str:
    """The ``ikev2_decryption_table`` entry of one IKE SA after a comment line naming it
    (``stamp``, a time, goes in front), or only comments saying why Wireshark cannot
    decrypt it."""
    encr_id, bits = event.proposal.encr_alg
    integ_id = event.proposal.integ_alg
    comment = _comment(stamp, f"IKE_SA #{event.unique_id} {event.spi_i.hex()}_i {event.spi_r.hex()}_r "
                              f"{event.proposal}")
    encr = _IKEV2_ENCR.get((encr_id, bits))
    integ = _IKEV2_INTEG.get(integ_id)
    if encr is None or integ is None:
        what = (f"encryption {_transform_name(EncrId, encr_id)}" if encr is None
                else f"integrity {_transform_name(IntegId, integ_id)}")
        return comment + f"#   not written: Wireshark 4.0 cannot decrypt IKEv2 with {what}\n"
    fields = [event.spi_i.hex(), event.spi_r.hex(), event.sk_ei.hex(), event.sk_er.hex(), f'"{encr}"',
              event.sk_ai.hex(), event.sk_ar.hex(), f'"{integ}"']
    return comment + ",".join(fields) + "\n"


def _esp_key(key: bytes) -> str:
    return f'"0x{key.hex()}"' if key else '""'


def esp_lines(info: ChildSaInfo, *, stamp: str = "") -> str:
    """The two ``esp_sa`` entries of a CHILD SA (inbound, then outbound) for its current
    outer addresses, after a comment line naming it (``stamp``, a time, goes in front), or
    only comments saying why Wireshark cannot decrypt it."""
    comment = _comment(stamp, f"CHILD_SA {info.conn}{{{info.child_unique_id}}} of IKE_SA #{info.ike_unique_id}: "
                              f"{info.spi_in:08x}_i {info.spi_out:08x}_o {info.local}...{info.remote}"
                              f"{' udp-encap' if info.udp_encap else ''}{' ESN' if info.esn else ''}")
    encr = _ESP_ENCR.get(info.encr_id)
    auth = _ESP_AUTH.get(info.integ_id)
    if encr is None or auth is None:
        what = (f"encryption {_transform_name(EncrId, info.encr_id)}" if encr is None
                else f"integrity {_transform_name(IntegId, info.integ_id)}")
        return comment + f"#   not written: Wireshark 4.0 cannot decrypt ESP with {what}\n"
    if info.esn:
        comment += "#   extended sequence numbers: Wireshark 4.0 decrypts, but shows the ICV as incorrect\n"
    family = "IPv6" if ":" in info.local.host else "IPv4"
    local, remote = info.local.host, info.remote.host
    lines = []
    for src, dst, spi, key, integ_key in (
        (remote, local, info.spi_in, info.key_in_encr, info.key_in_integ),
        (local, remote, info.spi_out, info.key_out_encr, info.key_out_integ),
    ):
        fields = [f'"{family}"', f'"{src}"', f'"{dst}"', f'"0x{spi:08x}"', f'"{encr}"', _esp_key(key),
                  f'"{auth}"', _esp_key(integ_key)]
        lines.append(",".join(fields) + "\n")
    return comment + "".join(lines)


class KeyLogError(Exception):
    """The key log directory or its files cannot be used safely."""


class KeyLog:
    """Appends SA keys to the two tables in ``directory`` (see the module docstring).

    The directory is made (mode 0700) if missing; an existing one must be a directory of
    ours that nobody else may enter.  Both files are opened at once (so they stay
    writable after ``--user`` drops privileges) with mode 0600, appended to with one
    ``write`` per SA, never truncated.  Write errors are logged once and then ignored:
    the key log never stops the gateway."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._fds: dict[str, int] = {}
        self._failed = False
        self._prepare_directory()
        try:
            for name in (IKEV2_FILE, ESP_FILE):
                self._fds[name] = self._open(name)
        except BaseException:
            self.close()
            raise

    def _prepare_directory(self) -> None:
        path = self.directory
        try:
            path.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            pass
        except OSError as exc:
            raise KeyLogError(f"--keylog {path}: cannot create the directory: {exc.strerror}") from None
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise KeyLogError(f"--keylog {path}: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise KeyLogError(f"--keylog {path}: not a directory")
        if st.st_uid != os.geteuid():
            raise KeyLogError(f"--keylog {path}: owned by uid {st.st_uid}, not by us: use a directory of our own")
        if st.st_mode & 0o077:
            raise KeyLogError(f"--keylog {path}: others may enter it (mode {stat.S_IMODE(st.st_mode):04o}): "
                              "use a private directory (mode 0700)")

    def _open(self, name: str) -> int:
        path = self.directory / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise KeyLogError(f"--keylog {self.directory}: cannot open {name}: {exc.strerror}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            os.close(fd)
            raise KeyLogError(f"--keylog {self.directory}: {name} is not a regular file of ours")
        os.fchmod(fd, 0o600)
        if st.st_size == 0:
            self._write(fd, _HEADER.format(table=name))
        return fd

    @staticmethod
    def _write(fd: int, text: str) -> None:
        data = text.encode("ascii")
        while data:
            written = os.write(fd, data)
            data = data[written:]

    def _append(self, name: str, text: str) -> None:
        fd = self._fds.get(name)
        if fd is None:
            return
        try:
            self._write(fd, text)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.info("key log %s: writing %s failed: %s; keys of later SAs may be missing",
                         self.directory, name, exc.strerror)

    # -- what the daemon hands over ----------------------------------------------------------

    def record(self, item) -> None:
        """Log the keys an engine output carries (:class:`IkeSaKeys`, :class:`ChildSaUp`,
        :class:`ChildSaUpdated`); anything else is ignored."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(item, IkeSaKeys):
            self._append(IKEV2_FILE, ikev2_line(item, stamp=stamp))
        elif isinstance(item, (ChildSaUp, ChildSaUpdated)):
            self._append(ESP_FILE, esp_lines(item.info, stamp=stamp))

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
