"""The kernel data plane: ESP in the Linux kernel, SAs and policies over netlink XFRM.

Where the kernel has ESP (``xfrm_user``, ``esp4``/``esp6``), it carries the traffic at
kernel speed and ikegate only installs state, as strongSwan's kernel-netlink plugin:

* **SAs**: both directions of each CHILD SA, tunnel mode between the IKE SA's outer
  addresses (``XFRM_STATE_AF_UNSPEC``: IPv4 and IPv6 inside either), UDP-encapsulated
  (``XFRMA_ENCAP``, ESP-in-UDP between the IKE ports) when NAT-T is on, native ESP
  otherwise.  Algorithms by kernel name (:data:`AEAD_NAMES`, :data:`CIPHER_NAMES`,
  :data:`INTEG_NAMES`); for AES-GCM and ChaCha20-Poly1305 the key material is the key
  followed by its 4-byte salt, exactly as IKE derives it and as
  :class:`~ikegate.ike.events.ChildSaInfo` holds it.  Replay window 32 (the legacy
  window), or ``XFRMA_REPLAY_ESN_VAL`` with the window when ESN is negotiated or the window
  is larger.  No lifetimes: the IKE engine rekeys and deletes.
* **Policies**: ``out``, ``in`` and ``fwd`` for every pair of local and remote traffic
  selectors of one IP version (each address range split into prefixes), with one
  template naming the SA's outer addresses and reqid.  A policy is shared by the SAs that
  need it (a rekeyed SA and its successor) and deleted with the last one;
  ``XFRM_MSG_UPDPOLICY`` installs and replaces.
* **Tag**: the kernel reqid of every SA and template is in ``0x49470000-0x4947ffff``
  ("IG" in the high half, :func:`is_tagged`), so that :meth:`KernelDataPlane.start`
  finds and deletes what a crashed earlier run left.  The engine's reqids are mapped by
  a table (:class:`~.reqids.ReqidTable`): usually ``0x49470000 | (reqid & 0xffff)``
  (:func:`kernel_reqid`; ``ip xfrm state`` shows 1229389824 + the engine's reqid), another
  free one when that is taken by a live SA 65536 reqids apart, freed when no SA uses it;
  with all 65536 in use a new CHILD SA is refused (logged as an error).
* **MOBIKE / NAT changes** (:meth:`KernelDataPlane.update`): the SAs are read back
  (replay state, counters), deleted and added again with the new addresses and
  encapsulation and the same sequence numbers; the policy templates are replaced.
* **Routes** to the virtual IPs: :mod:`.routes` (table 220 and a rule, as strongSwan).
* **Sockets** (:meth:`KernelDataPlane.attach`): ``UDP_ENCAP_ESPINUDP`` on the port-4500
  sockets so the kernel takes the ESP arriving there (IKE, with its non-ESP marker, still
  reaches the daemon; NAT keepalives are eaten by the kernel), and a bypass socket policy
  (``IP_XFRM_POLICY``/``IPV6_XFRM_POLICY``, action ALLOW, both directions) on every IKE
  socket so IKE itself is never caught by a policy (e.g. a ``0.0.0.0/0`` one).  Native
  ESP (protocol 50) needs no socket: the kernel handles it.
* **NAT mapping changes**: the kernel reports ESP-in-UDP of an SA arriving from a new
  address/port (``XFRM_MSG_MAPPING``); :meth:`KernelDataPlane.attach` listens and passes
  them to the daemon's ``esp_peer_moved`` (the engine follows the NATed peer and updates
  the SA), as the userspace data plane does for what its workers see.
* **Counters** (:meth:`KernelDataPlane.counters`): ``XFRM_MSG_GETSA`` of both SAs: bytes
  and packets (``curlft``), drops (replay and integrity failures of the inbound SA), and
  the last use converted from wall-clock seconds to the monotonic clock: ``XFRMA_LASTUSED``
  where the kernel sends it, else the ``use_time`` of the SA's policies (Linux 6.1 stamps
  policies at every packet but SAs only at their first; strongSwan reads policies too).
  After an :meth:`~KernelDataPlane.update` the counts of the replaced SAs are added.

:func:`kernel_esp_available` is the probe behind ``--dataplane auto``: it opens
NETLINK_XFRM and adds and deletes a throwaway tagged AES-GCM ESP SA on loopback.

All calls come from the daemon's loop thread; each is a short synchronous netlink
exchange (no thread of its own is needed).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import socket
import time
from dataclasses import dataclass, field, replace

from ikegate.crypto.transforms import is_supported as engine_supported
from ikegate.dataplane.algorithms import common_esp_supported
from ikegate.dataplane.interface import SaCounters
from ikegate.dataplane.routes import selector_networks
from ikegate.dataplane.xfrm import messages as xm
from ikegate.dataplane.xfrm.messages import (AlgoAead, AlgoAuth, AlgoCrypt, EncapTmpl, LastUsed, Message,
                                              NetlinkError, ReplayEsn, ReplayState, Selector, Templates,
                                              UserPolicyId, UserPolicyInfo, UserSaId, UserSaInfo, UserTmpl)
from ikegate.dataplane.xfrm.netlink import NETLINK_XFRM, NetlinkSocket
from ikegate.dataplane.xfrm.reqids import ReqidsExhausted, ReqidTable
from ikegate.dataplane.xfrm.routes import DEFAULT_PRIORITY, DEFAULT_TABLE, VirtualIpRoutes
from ikegate.ike.events import ChildSaInfo, Endpoint
from ikegate.log import get_logger
from ikegate.wire.constants import EncrId, IntegId, ProtocolId, TransformType

__all__ = ["KernelDataPlane", "KernelDataPlaneError", "REQID_TAG", "add_arguments", "is_tagged",
           "kernel_esp_available", "kernel_esp_supported", "kernel_reqid"]

log = get_logger("knl")

REQID_TAG = 0x49470000  # "IG"
REQID_MASK = 0xFFFF0000
DEFAULT_REPLAY_WINDOW = 32
MAX_REPLAY_WINDOW = 4096  # the kernel's XFRMA_REPLAY_ESN_MAX bits
LEGACY_WINDOW_MAX = 32  # the legacy xfrm_replay_state bitmap is one 32-bit word
POLICY_PRIORITY_BASE = 200_000  # lower wins; more specific selectors get lower numbers

SOL_UDP = 17
UDP_ENCAP = 100
IP_XFRM_POLICY = 17
IPV6_XFRM_POLICY = 35

#: IKE ENCR id -> (kernel AEAD name, ICV bits)
AEAD_NAMES = {
    EncrId.AES_GCM_8: ("rfc4106(gcm(aes))", 64),
    EncrId.AES_GCM_12: ("rfc4106(gcm(aes))", 96),
    EncrId.AES_GCM_16: ("rfc4106(gcm(aes))", 128),
    EncrId.CHACHA20_POLY1305: ("rfc7539esp(chacha20,poly1305)", 128),
}
#: IKE ENCR id -> kernel cipher name
CIPHER_NAMES = {
    EncrId.AES_CBC: "cbc(aes)",
    EncrId.TRIPLE_DES: "cbc(des3_ede)",
    EncrId.NULL: "ecb(cipher_null)",
}
#: IKE INTEG id -> (kernel name, truncation bits)
INTEG_NAMES = {
    IntegId.HMAC_MD5_96: ("hmac(md5)", 96),
    IntegId.HMAC_SHA1_96: ("hmac(sha1)", 96),
    IntegId.HMAC_SHA2_256_128: ("hmac(sha256)", 128),
    IntegId.HMAC_SHA2_384_192: ("hmac(sha384)", 192),
    IntegId.HMAC_SHA2_512_256: ("hmac(sha512)", 256),
    IntegId.AES_XCBC_96: ("xcbc(aes)", 96),
}


def kernel_esp_supported(ttype: int, alg: int, bits: int) -> bool:
    """What the kernel data plane can carry, for CHILD SA proposals: the ciphers and
    integrity algorithms this module maps to kernel names (:data:`AEAD_NAMES`,
    :data:`CIPHER_NAMES`, :data:`INTEG_NAMES`) for which the engine also derives keys
    (with a key length it accepts; e.g. AES-XCBC-96, which userspace ESP lacks, but not
    ENCR_NULL, which the engine does not key), plus key exchange methods and ESN as for
    every backend (:func:`~ikegate.dataplane.algorithms.common_esp_supported`)."""
    common = common_esp_supported(ttype, alg)
    if common is not None:
        return common
    if ttype == TransformType.ENCR:
        return (alg in AEAD_NAMES or alg in CIPHER_NAMES) and engine_supported(ttype, alg, bits)
    return alg in INTEG_NAMES and engine_supported(ttype, alg, bits)


class KernelDataPlaneError(RuntimeError):
    """The kernel data plane cannot start or cannot install an SA."""


def kernel_reqid(reqid: int) -> int:
    """The kernel reqid ikegate prefers for the engine's ``reqid`` (tagged, see module doc;
    the one it uses is :class:`~.reqids.ReqidTable`'s)."""
    return REQID_TAG | (reqid & 0xFFFF)


def is_tagged(kernel_reqid_value: int) -> bool:
    """Was an SA/template with this kernel reqid installed by ikegate?"""
    return kernel_reqid_value & REQID_MASK == REQID_TAG


def _replay_state(sa: Message | None):
    """The replay state of a GETSA answer (ESN or plain), None without one."""
    if sa is None:
        return None
    return xm.find(sa.attrs, ReplayEsn) or xm.find(sa.attrs, ReplayState)


def _remote_prefixes(info: ChildSaInfo) -> list[str]:
    """The prefixes of the SA's remote selectors (the client's virtual IPs), to route."""
    return [n for ts in info.remote_ts for n in selector_networks(ts.version, ts.start, ts.end)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the kernel data plane (for ``ikegate start``)."""
    group = parser.add_argument_group("kernel data plane")
    group.add_argument("--kernel-route-table", type=int, default=DEFAULT_TABLE,
                       help="routing table for the routes to virtual IPs (default %(default)s)")
    group.add_argument("--kernel-route-priority", type=int, default=DEFAULT_PRIORITY,
                       help="priority of the ip rule for that table (default %(default)s)")
    group.add_argument("--kernel-no-routes", action="store_true",
                       help="install no routes to the virtual IPs (the admin routes the pools)")


# -- the probe -----------------------------------------------------------------------------

def kernel_esp_available() -> tuple[bool, str]:
    """Does this kernel do ESP for us?  Tries for real: NETLINK_XFRM, then a throwaway
    AES-GCM ESP SA on loopback (tagged, random SPI) added and deleted again."""
    try:
        sock = NetlinkSocket(NETLINK_XFRM)
    except OSError as exc:
        return False, f"no netlink XFRM interface ({exc.strerror or exc})"
    spi = 0x100 + int.from_bytes(os.urandom(4), "big") % 0xFFFF0000
    try:
        with sock:
            info = UserSaInfo(daddr="127.0.0.1", saddr="127.0.0.1", spi=spi, family=socket.AF_INET,
                              reqid=REQID_TAG, replay_window=DEFAULT_REPLAY_WINDOW, flags=xm.XFRM_STATE_AF_UNSPEC)
            try:
                sock.request(Message(xm.XFRM_MSG_NEWSA, info, [AlgoAead("rfc4106(gcm(aes))", os.urandom(20), 128)]))
            except NetlinkError as exc:
                if exc.errno in (errno.EPERM, errno.EACCES):
                    return False, f"not allowed to add an ESP SA ({exc.strerror}): CAP_NET_ADMIN needed"
                return False, f"the kernel refuses an AES-GCM ESP SA ({exc.strerror}): esp4 module missing?"
            try:
                sock.request(Message(xm.XFRM_MSG_DELSA, UserSaId("127.0.0.1", spi, socket.AF_INET)))
            except NetlinkError as exc:
                return False, f"cannot delete the probe SA ({exc.strerror})"
    except OSError as exc:
        return False, f"netlink XFRM failed ({exc})"
    return True, "ESP available in the kernel"


# -- selectors and policies ---------------------------------------------------------------

def _ports(start: int, end: int) -> tuple[int, int]:
    """(port, mask) of an xfrm selector for a TS port range: exact or any."""
    if start == end:
        return start, 0xFFFF
    return 0, 0


def _selectors(local_ts, remote_ts) -> list[Selector]:
    """xfrm selectors (source local, destination remote) of every prefix pair of one IP
    version; protocol and ports from the traffic selectors (ranges other than one port or
    all ports become all ports, as the kernel's masks cannot express them)."""
    out = []
    for local in local_ts:
        for remote in remote_ts:
            if local.version != remote.version:
                continue
            if local.protocol and remote.protocol and local.protocol != remote.protocol:
                continue
            proto = local.protocol or remote.protocol
            sport, sport_mask = _ports(local.start_port, local.end_port)
            dport, dport_mask = _ports(remote.start_port, remote.end_port)
            family = socket.AF_INET6 if local.version == 6 else socket.AF_INET
            for src in selector_networks(local.version, local.start, local.end):
                src_net = ipaddress.ip_network(src)
                for dst in selector_networks(remote.version, remote.start, remote.end):
                    dst_net = ipaddress.ip_network(dst)
                    out.append(Selector(family, str(dst_net.network_address), str(src_net.network_address),
                                        dst_net.prefixlen, src_net.prefixlen, proto, dport, dport_mask,
                                        sport, sport_mask))
    return out


def _reverse(sel: Selector) -> Selector:
    return Selector(sel.family, sel.saddr, sel.daddr, sel.prefixlen_s, sel.prefixlen_d, sel.proto,
                    sel.sport, sel.sport_mask, sel.dport, sel.dport_mask)


def _priority(sel: Selector) -> int:
    bits = 128 if sel.family == socket.AF_INET6 else 32
    specific = (sel.prefixlen_s + sel.prefixlen_d) * 128 // bits
    return POLICY_PRIORITY_BASE - specific * 64 - (32 if sel.proto else 0) - (8 if sel.sport_mask or sel.dport_mask else 0)


def _key(sel: Selector, direction: int) -> tuple:
    return (sel.family, sel.saddr, sel.prefixlen_s, sel.daddr, sel.prefixlen_d, sel.proto, sel.sport,
            sel.dport, direction)


@dataclass
class _Policy:
    sel: Selector
    dir: int
    owners: dict[int, UserTmpl] = field(default_factory=dict)  # inbound SPI -> template (last wins)


@dataclass
class _Installed:
    info: ChildSaInfo  # a copy: the engine changes its ChildSaInfo in place when the peer moves
    policies: list[tuple] = field(default_factory=list)
    offset: SaCounters = field(default_factory=SaCounters)  # counted by SAs an update replaced


class KernelDataPlane:
    """ESP in the Linux kernel (the :class:`~ikegate.dataplane.interface.DataPlane` named
    ``"kernel"``; see the module docstring)."""

    name = "kernel"
    description = "kernel XFRM"  # for ikegate statusall

    def __init__(self, *, replay_window: int = DEFAULT_REPLAY_WINDOW, route_table: int = DEFAULT_TABLE,
                 route_rule_priority: int = DEFAULT_PRIORITY, routes: bool = True) -> None:
        if not 0 <= replay_window <= MAX_REPLAY_WINDOW:
            clamped = min(max(replay_window, 0), MAX_REPLAY_WINDOW)
            log.info("replay window %d out of range 0..%d: using %d", replay_window, MAX_REPLAY_WINDOW, clamped)
            replay_window = clamped
        self.replay_window = replay_window
        self.routes = VirtualIpRoutes(route_table, route_rule_priority) if routes else None
        self.sock: NetlinkSocket | None = None
        self.mapping_sock: NetlinkSocket | None = None
        self.installed: dict[int, _Installed] = {}
        self.policies: dict[tuple, _Policy] = {}
        self.reqids = ReqidTable(REQID_TAG)
        self.daemon = None

    @staticmethod
    def esp_supported(ttype: int, alg: int, bits: int) -> bool:
        """Can this backend carry ESP with this transform?  (:func:`kernel_esp_supported`)"""
        return kernel_esp_supported(ttype, alg, bits)

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, replay_window: int = DEFAULT_REPLAY_WINDOW) -> "KernelDataPlane":
        return cls(replay_window=replay_window,
                   route_table=getattr(args, "kernel_route_table", DEFAULT_TABLE),
                   route_rule_priority=getattr(args, "kernel_route_priority", DEFAULT_PRIORITY),
                   routes=not getattr(args, "kernel_no_routes", False))

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Open NETLINK_XFRM, delete what an earlier run left (tagged SAs and policies, our
        routes), set up the routing rule."""
        try:
            self.sock = NetlinkSocket(NETLINK_XFRM)
        except OSError as exc:
            raise KernelDataPlaneError(f"no netlink XFRM interface: {exc}") from None
        states, policies = self.sweep()
        flushed = self.routes.start() if self.routes is not None else 0
        if states or policies or flushed:
            log.info("removed %d SA(s), %d policy(ies) and %d route(s) left by an earlier run", states,
                     policies, flushed)
        log.info("kernel data plane: XFRM ready (replay window %d%s)", self.replay_window,
                 f", routes in table {self.routes.table}" if self.routes is not None else ", no routes")

    def attach(self, daemon) -> None:
        """ESP-in-UDP decapsulation on the port-4500 sockets, bypass policies on all IKE
        sockets, and NAT mapping changes the kernel reports passed to
        ``daemon.esp_peer_moved`` (read in the daemon's loop)."""
        self.daemon = daemon
        for ike_socket in daemon.sockets:
            prepare_ike_socket(ike_socket.sock, natt=ike_socket.natt)
        loop = getattr(daemon, "loop", None)
        if loop is not None and hasattr(daemon, "esp_peer_moved"):
            self.listen_mappings()
            loop.add_reader(self.mapping_sock.fileno(), self._on_mappings)

    def listen_mappings(self) -> None:
        """Subscribe to XFRM_MSG_MAPPING (read them with :meth:`mappings`)."""
        if self.mapping_sock is None:
            self.mapping_sock = NetlinkSocket(NETLINK_XFRM)
            self.mapping_sock.join(xm.XFRMNLGRP_MAPPING)
            self.mapping_sock.sock.setblocking(False)  # read from the loop when readable

    def mappings(self) -> list[tuple[int, Endpoint]]:
        """(inbound SPI, new peer endpoint) of every NAT mapping change the kernel reported
        since the last call, for SAs of ours."""
        out = []
        if self.mapping_sock is None:
            return out
        for message in self.mapping_sock.notifications():
            if message.type != xm.XFRM_MSG_MAPPING or not is_tagged(message.body.reqid):
                continue
            mapping = message.body
            if mapping.id.spi in self.installed:
                out.append((mapping.id.spi, Endpoint(mapping.new_saddr, mapping.new_sport)))
        return out

    def _on_mappings(self) -> None:
        try:
            moved = self.mappings()
        except (OSError, xm.XfrmDecodeError) as exc:
            log.info("reading XFRM mapping notifications: %s", exc)
            return
        for spi_in, src in moved:
            log.info("kernel: ESP-in-UDP of SA %08x now comes from %s", spi_in, src)
            self.daemon.esp_peer_moved(spi_in, src)

    def stop(self) -> None:
        """Delete every SA, policy and route installed (and any tagged leftover)."""
        if self.mapping_sock is not None:
            loop = getattr(self.daemon, "loop", None)
            if loop is not None:
                try:
                    loop.remove_reader(self.mapping_sock.fileno())
                except (ValueError, OSError, RuntimeError):
                    pass
            self.mapping_sock.close()
            self.mapping_sock = None
        if self.sock is None:
            return
        self.sweep()  # every SA and policy of ours carries the tag
        if self.routes is not None:
            self.routes.stop()
        self.sock.close()
        self.sock = None
        self.installed.clear()
        self.policies.clear()
        self.reqids.clear()

    def sweep(self) -> tuple[int, int]:
        """Delete every SA and policy carrying ikegate's reqid tag; (SAs, policies) deleted."""
        states = policies = 0
        for message in self.sock.dump(Message(xm.XFRM_MSG_GETSA)):
            sa = message.body
            if message.type != xm.XFRM_MSG_NEWSA or not is_tagged(sa.reqid):
                continue
            if self._delete_sa(UserSaId(sa.daddr, sa.spi, sa.family, sa.proto)):
                states += 1
        for message in self.sock.dump(Message(xm.XFRM_MSG_GETPOLICY)):
            if message.type != xm.XFRM_MSG_NEWPOLICY:
                continue
            templates = xm.find(message.attrs, Templates)
            if templates is None or not any(is_tagged(t.reqid) for t in templates.templates):
                continue
            policy = message.body
            try:
                self.sock.request(Message(xm.XFRM_MSG_DELPOLICY, UserPolicyId(policy.sel, policy.dir)))
                policies += 1
            except NetlinkError as exc:
                log.debug("deleting a leftover policy: %s", exc)
        return states, policies

    # -- CHILD SAs ---------------------------------------------------------------------------

    def install(self, info: ChildSaInfo) -> None:
        """Both SAs, the policies of every selector pair, routes to the remote selectors.
        A refusal of the kernel is logged (and what got in removed again): the daemon's loop
        goes on with its other SAs."""
        if self.sock is None:
            raise KernelDataPlaneError("start() was not called")
        try:
            self._install(info)
        except (OSError, KernelDataPlaneError) as exc:
            log.info("cannot install CHILD SA %s{%d} in the kernel: %s", info.conn, info.child_unique_id, exc)
            self.remove(info)

    def _install(self, info: ChildSaInfo) -> None:
        if info.spi_in in self.installed:
            self.remove(self.installed[info.spi_in].info)
        try:
            self.reqids.acquire(info.reqid, info.spi_in)
        except ReqidsExhausted as exc:
            log.error("refusing CHILD SA %s{%d}: %s", info.conn, info.child_unique_id, exc)
            raise KernelDataPlaneError(str(exc)) from None
        try:
            sa_in, sa_out = self._sa_messages(info)
            self._add_sa(sa_in)
            try:
                self._add_sa(sa_out)
            except (OSError, KernelDataPlaneError):
                self._delete_sa(self._sa_id(info, inbound=True))
                raise
        except BaseException:
            self.reqids.release(info.spi_in)
            raise
        installed = _Installed(replace(info))
        self.installed[info.spi_in] = installed
        self._install_policies(installed)
        routed = []
        if self.routes is not None:
            routed = self.routes.add(info.spi_in, _remote_prefixes(info), info.remote.host, info.local.host)
        log.info("installed CHILD SA %s{%d} in the kernel: %08x_i %08x_o (%s, reqid %d), %d policies, routes: %s",
                 info.conn, info.child_unique_id, info.spi_in, info.spi_out,
                 "ESP-in-UDP" if info.udp_encap else "native ESP", self._reqid(info),
                 len(installed.policies), ", ".join(routed) or "none")

    def update(self, info: ChildSaInfo) -> None:
        """New outer addresses/ports or encapsulation: SAs re-added with their sequence
        numbers and replay state, policy templates replaced.  Failures are logged."""
        try:
            self._update(info)
        except (OSError, KernelDataPlaneError) as exc:
            log.info("cannot update CHILD SA %s{%d} in the kernel: %s", info.conn, info.child_unique_id, exc)

    def _update(self, info: ChildSaInfo) -> None:
        installed = self.installed.get(info.spi_in)
        if installed is None:
            self._install(info)
            return
        old = installed.info
        current_in = self._get_sa(self._sa_id(old, inbound=True))
        current_out = self._get_sa(self._sa_id(old, inbound=False))
        replay_in, replay_out = _replay_state(current_in), _replay_state(current_out)
        before = self._read(old, current_in, current_out)
        sa_in, sa_out = self._sa_messages(info, replay_in, replay_out)
        self._delete_sa(self._sa_id(old, inbound=True))
        self._delete_sa(self._sa_id(old, inbound=False))
        self._add_sa(sa_in)
        self._add_sa(sa_out)
        if before is not None:
            installed.offset = before.plus(installed.offset)
        installed.info = replace(info)
        self._release_policies(installed)
        self._install_policies(installed)
        if self.routes is not None:
            self.routes.release(info.spi_in)
            self.routes.add(info.spi_in, _remote_prefixes(info), info.remote.host, info.local.host)
        log.info("updated CHILD SA %s{%d} in the kernel: %s -> %s, %s", info.conn, info.child_unique_id,
                 info.local, info.remote, "ESP-in-UDP" if info.udp_encap else "native ESP")

    def remove(self, info: ChildSaInfo) -> None:
        """Both SAs; the policies and routes no other SA needs."""
        installed = self.installed.pop(info.spi_in, None)
        if installed is None or self.sock is None:
            return
        current = installed.info
        self._release_policies(installed)
        self._delete_sa(self._sa_id(current, inbound=True))
        self._delete_sa(self._sa_id(current, inbound=False))
        self.reqids.release(current.spi_in)
        if self.routes is not None:
            self.routes.release(info.spi_in)

    def stats(self) -> dict[str, int]:
        """What ikegate has installed in the kernel now (for ``ikegate statusall``): SAs
        (two per CHILD SA), policies, kernel reqids in use and routes to virtual IPs."""
        return {"sas": 2 * len(self.installed), "policies": len(self.policies), "reqids": len(self.reqids),
                "routes": len(self.routes.users) if self.routes is not None else 0}

    def counters(self, spi_in: int) -> SaCounters | None:
        """Traffic of the SA pair with this inbound SPI, read from the kernel now."""
        installed = self.installed.get(spi_in)
        if installed is None or self.sock is None:
            return None
        now = self._read(installed.info)
        if now is None:
            return None
        return now.plus(installed.offset)

    # -- internals -------------------------------------------------------------------------

    def _reqid(self, info: ChildSaInfo) -> int:
        """The kernel reqid of the SA pair (acquired in :meth:`_install`)."""
        reqid = self.reqids.get(info.reqid)
        if reqid is None:
            raise KernelDataPlaneError(f"no kernel reqid for reqid {info.reqid}")
        return reqid

    def _sa_id(self, info: ChildSaInfo, *, inbound: bool) -> UserSaId:
        host = info.local.host if inbound else info.remote.host
        return UserSaId(host, info.spi_in if inbound else info.spi_out, xm.family_of(host), _xfrm_proto(info))

    def _sa_messages(self, info: ChildSaInfo, replay_in=None, replay_out=None) -> tuple[Message, Message]:
        """NEWSA messages of the inbound and the outbound SA."""
        return (self._sa_message(info, True, replay_in), self._sa_message(info, False, replay_out))

    def _sa_message(self, info: ChildSaInfo, inbound: bool, replay=None) -> Message:
        local, remote = info.local, info.remote
        src, dst = (remote, local) if inbound else (local, remote)
        family = xm.family_of(dst.host)
        flags = xm.XFRM_STATE_AF_UNSPEC
        attrs: list = _algorithms(info, inbound)
        window = self.replay_window
        legacy = not info.esn and window <= LEGACY_WINDOW_MAX
        if info.esn:
            flags |= xm.XFRM_STATE_ESN
        if legacy:
            if isinstance(replay, ReplayState):
                attrs.append(replay)
        else:
            esn = replay if isinstance(replay, ReplayEsn) else ReplayEsn(window)
            esn.replay_window = max(window, 1) if info.esn else window
            attrs.append(esn)
        if info.udp_encap:
            attrs.append(EncapTmpl(src.port, dst.port))
        body = UserSaInfo(daddr=dst.host, saddr=src.host, family=family,
                          spi=info.spi_in if inbound else info.spi_out, proto=_xfrm_proto(info),
                          reqid=self._reqid(info), mode=xm.XFRM_MODE_TUNNEL,
                          replay_window=window if legacy else 0, flags=flags)
        return Message(xm.XFRM_MSG_NEWSA, body, attrs)

    def _add_sa(self, message: Message) -> None:
        try:
            self.sock.request(message)
        except NetlinkError as exc:
            if exc.errno != errno.EEXIST:
                raise KernelDataPlaneError(f"cannot add SA {message.body.spi:08x}: {exc.strerror}") from exc
            sa = message.body
            self._delete_sa(UserSaId(sa.daddr, sa.spi, sa.family, sa.proto))
            self.sock.request(message)

    def _delete_sa(self, sa_id: UserSaId) -> bool:
        try:
            self.sock.request(Message(xm.XFRM_MSG_DELSA, sa_id))
            return True
        except NetlinkError as exc:
            if exc.errno != errno.ESRCH:
                log.info("deleting SA %08x: %s", sa_id.spi, exc.strerror)
            return False

    def _get_sa(self, sa_id: UserSaId) -> Message | None:
        try:
            reply = self.sock.query(Message(xm.XFRM_MSG_GETSA, sa_id))
        except NetlinkError as exc:
            log.debug("reading SA %08x: %s", sa_id.spi, exc.strerror)
            return None
        return reply if reply.type == xm.XFRM_MSG_NEWSA else None

    def _read(self, info: ChildSaInfo, sa_in: Message | None = None,
              sa_out: Message | None = None) -> SaCounters | None:
        """The counters of the SA pair (``sa_in``/``sa_out``: GETSA answers already at hand)."""
        sa_in = sa_in or self._get_sa(self._sa_id(info, inbound=True))
        sa_out = sa_out or self._get_sa(self._sa_id(info, inbound=False))
        if sa_in is None and sa_out is None:
            return None
        counters = SaCounters()
        wall, mono = time.time(), time.monotonic()
        used_in, used_out = self._policy_use(info.spi_in)
        if sa_in is not None:
            counters.bytes_in, counters.packets_in = sa_in.body.curlft.bytes, sa_in.body.curlft.packets
            counters.dropped = sa_in.body.stats.replay + sa_in.body.stats.integrity_failed
            counters.last_in = _monotonic(_last_use(sa_in, used_in), wall, mono)
        if sa_out is not None:
            counters.bytes_out, counters.packets_out = sa_out.body.curlft.bytes, sa_out.body.curlft.packets
            counters.last_out = _monotonic(_last_use(sa_out, used_out), wall, mono)
        return counters

    def _policy_use(self, spi_in: int) -> tuple[int, int]:
        """The latest ``curlft.use_time`` of the SA's inbound (in, fwd) and outbound policies:
        the kernel stamps a policy at every packet it matches, where Linux 6.1 stamps an SA
        only at its first packet (``XFRMA_LASTUSED`` arrived later); strongSwan reads the
        policies for the same reason."""
        installed = self.installed.get(spi_in)
        used_in = used_out = 0
        for key in installed.policies if installed is not None else ():
            policy = self.policies.get(key)
            if policy is None:
                continue
            try:
                reply = self.sock.query(Message(xm.XFRM_MSG_GETPOLICY, UserPolicyId(policy.sel, policy.dir)))
            except NetlinkError:
                continue
            if not isinstance(reply.body, UserPolicyInfo):
                continue
            if policy.dir == xm.XFRM_POLICY_OUT:
                used_out = max(used_out, reply.body.curlft.use_time)
            else:
                used_in = max(used_in, reply.body.curlft.use_time)
        return used_in, used_out

    def _templates(self, info: ChildSaInfo, inbound: bool) -> UserTmpl:
        src, dst = (info.remote, info.local) if inbound else (info.local, info.remote)
        return UserTmpl(daddr=dst.host, saddr=src.host, family=xm.family_of(dst.host), reqid=self._reqid(info),
                        proto=_xfrm_proto(info))

    def _install_policies(self, installed: _Installed) -> None:
        info = installed.info
        tmpl_out, tmpl_in = self._templates(info, False), self._templates(info, True)
        for sel in _selectors(info.local_ts, info.remote_ts):
            for direction, selector, tmpl in ((xm.XFRM_POLICY_OUT, sel, tmpl_out),
                                              (xm.XFRM_POLICY_IN, _reverse(sel), tmpl_in),
                                              (xm.XFRM_POLICY_FWD, _reverse(sel), tmpl_in)):
                key = _key(selector, direction)
                policy = self.policies.setdefault(key, _Policy(selector, direction))
                policy.owners.pop(info.spi_in, None)
                policy.owners[info.spi_in] = tmpl
                self._write_policy(policy)
                if key not in installed.policies:
                    installed.policies.append(key)

    def _release_policies(self, installed: _Installed) -> None:
        spi_in = installed.info.spi_in
        for key in installed.policies:
            policy = self.policies.get(key)
            if policy is None:
                continue
            policy.owners.pop(spi_in, None)
            if policy.owners:
                self._write_policy(policy)  # the template of the SA installed last among the rest
                continue
            del self.policies[key]
            try:
                self.sock.request(Message(xm.XFRM_MSG_DELPOLICY, UserPolicyId(policy.sel, policy.dir)))
            except NetlinkError as exc:
                if exc.errno != errno.ENOENT:
                    log.info("deleting a policy: %s", exc.strerror)
        installed.policies = []

    def _write_policy(self, policy: _Policy) -> None:
        tmpl = next(reversed(policy.owners.values()))
        body = UserPolicyInfo(policy.sel, policy.dir, xm.XFRM_POLICY_ALLOW, priority=_priority(policy.sel))
        try:
            self.sock.request(Message(xm.XFRM_MSG_UPDPOLICY, body, [Templates([tmpl])]))
        except NetlinkError as exc:
            raise KernelDataPlaneError(f"cannot install a policy: {exc.strerror}") from exc


def _xfrm_proto(info: ChildSaInfo) -> int:
    """The IP protocol of the SA: ESP (``info.protocol`` is IKE's protocol id, ESP = 3)."""
    if info.protocol not in (0, ProtocolId.ESP):
        raise KernelDataPlaneError(f"only ESP is supported, not IKE protocol {info.protocol}")
    return xm.IPPROTO_ESP


def _algorithms(info: ChildSaInfo, inbound: bool) -> list:
    """The algorithm attributes of one direction's SA."""
    encr_key = bytes(info.key_in_encr if inbound else info.key_out_encr)
    integ_key = bytes(info.key_in_integ if inbound else info.key_out_integ)
    encr_id = info.encr_id
    if encr_id in AEAD_NAMES:
        name, icv = AEAD_NAMES[encr_id]
        return [AlgoAead(name, encr_key, icv)]
    name = CIPHER_NAMES.get(encr_id)
    if name is None:
        raise KernelDataPlaneError(f"no kernel cipher for ENCR {encr_id}")
    if not info.integ_id:
        raise KernelDataPlaneError(f"ENCR {encr_id} needs an integrity algorithm")
    integ = INTEG_NAMES.get(info.integ_id)
    if integ is None:
        raise KernelDataPlaneError(f"no kernel integrity algorithm for INTEG {info.integ_id}")
    return [AlgoCrypt(name, encr_key), AlgoAuth(integ[0], integ_key, integ[1])]


def _last_use(sa: Message, policy_use: int) -> int:
    """Wall-clock second an SA was last used (0: never): ``XFRMA_LASTUSED`` where the kernel
    sends it, else its policies' last use, else the SA's first use."""
    last = xm.find(sa.attrs, LastUsed)
    best = max(last.time if last is not None else 0, policy_use)
    if not best and sa.body.curlft.packets:
        best = sa.body.curlft.use_time
    return best


def _monotonic(last: int, wall: float, mono: float) -> float | None:
    """A wall-clock second as a time of the monotonic clock (the event loop's)."""
    if not last:
        return None
    return mono - max(0.0, wall - last)


def prepare_ike_socket(sock: socket.socket, *, natt: bool) -> None:
    """Bypass policies (both directions) on an IKE socket; ESP-in-UDP on a NAT-T one."""
    family = sock.family
    level, option = ((socket.IPPROTO_IPV6, IPV6_XFRM_POLICY) if family == socket.AF_INET6
                     else (socket.IPPROTO_IP, IP_XFRM_POLICY))
    for direction in (xm.XFRM_POLICY_IN, xm.XFRM_POLICY_OUT):
        policy = UserPolicyInfo(Selector(family=family), direction, xm.XFRM_POLICY_ALLOW)
        try:
            sock.setsockopt(level, option, policy.pack())
        except OSError as exc:
            log.info("cannot set a bypass policy on an IKE socket: %s", exc)
    if natt:
        try:
            sock.setsockopt(SOL_UDP, UDP_ENCAP, xm.UDP_ENCAP_ESPINUDP)
        except OSError as exc:
            log.info("cannot enable ESP-in-UDP on port %d (%s): %s", sock.getsockname()[1],
                     "IPv6" if family == socket.AF_INET6 else "IPv4", exc)
