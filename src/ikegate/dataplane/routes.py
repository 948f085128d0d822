"""Netlink for the userspace data plane: the TUN link, the routes into it, path MTUs.

pyroute2 0.9's synchronous ``IPRoute`` drives its own asyncio loop and refuses to run in
a thread whose loop is already running (the daemon's).  :class:`Netlink` therefore owns
one ``IPRoute`` in one dedicated thread and every call is handed to that thread.  Link
set-up waits for the answer; route changes for CHILD SAs are queued without waiting (in
order), since pyroute2 spends about a millisecond of Python per change and the event
loop has connects to answer meanwhile.  Path MTUs come from the kernel's route lookup
for a connected UDP socket (:func:`path_mtu`), not from netlink.

Routing decision (documented in :mod:`ikegate.dataplane.userspace`): one route per
remote traffic selector of each installed CHILD SA (the client's virtual IPs: /32 and
/128 host routes in the usual road-warrior case), reference-counted because a rekeyed
SA and its successor, or two SAs of one client, cover the same addresses.  Routes are
tagged with protocol :data:`RTPROT_IKEGATE` so leftovers can be found and flushed
(``ip route show proto 105``).
"""

from __future__ import annotations

import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

from ikegate.log import get_logger

__all__ = ["RTPROT_IKEGATE", "Netlink", "RouteSet", "path_mtu", "selector_networks"]

log = get_logger("knl")

#: The ``rtm_protocol`` of every route we add (unassigned in iproute2's rt_protos).
RTPROT_IKEGATE = 105
MAIN_TABLE = 254
RT_SCOPE_NOWHERE = 255  # in a delete request: match a route of any scope

T = TypeVar("T")


def selector_networks(version: int, start: int, end: int) -> list[str]:
    """The CIDR prefixes exactly covering the address range ``start..end``."""
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return [str(net) for net in ipaddress.summarize_address_range(cls(start), cls(end))]


class Netlink:
    """One pyroute2 ``IPRoute`` used from one private thread (see the module docstring)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ikegate-netlink")
        self._ipr = None

    def _call(self, func: Callable[..., T], *args, **kwargs) -> T:
        return self._executor.submit(func, *args, **kwargs).result()

    def _post(self, func: Callable[[], object], what: str) -> None:
        """Run ``func`` on the netlink thread without waiting (calls keep their order);
        a failure is logged there."""

        def run():
            try:
                func()
            except Exception as exc:
                log.info("%s: %s", what, exc)

        self._executor.submit(run)

    def _ipr_get(self):
        if self._ipr is None:
            from pyroute2 import IPRoute

            self._ipr = IPRoute()
        return self._ipr

    def close(self) -> None:
        def _close():
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None

        try:
            self._call(_close)
        finally:
            self._executor.shutdown(wait=True)

    # -- links -------------------------------------------------------------------------------

    def link_index(self, name: str) -> int | None:
        return self._call(lambda: next(iter(self._ipr_get().link_lookup(ifname=name)), None))

    def link_mtu(self, index: int) -> int | None:
        def _mtu():
            links = self._ipr_get().get_links(index)
            return links[0].get("IFLA_MTU") if links else None

        return self._call(_mtu)

    def setup_link(self, index: int, mtu: int, txqueuelen: int) -> None:
        """Set MTU and queue length, drop any address a previous owner left, bring it up."""

        def _setup():
            ipr = self._ipr_get()
            ipr.link("set", index=index, mtu=mtu, txqlen=txqueuelen)
            for addr in ipr.get_addr(index=index):
                if addr.get("IFA_ADDRESS") and addr.get("scope", 0) != 253:  # keep link-local
                    ipr.addr("del", index=index, address=addr.get("IFA_ADDRESS"),
                             prefixlen=addr["prefixlen"])
            ipr.link("set", index=index, state="up")

        self._call(_setup)

    def delete_link(self, index: int) -> None:
        def _delete():
            try:
                self._ipr_get().link("del", index=index)
            except Exception as exc:  # already gone: fine
                log.debug("deleting link %d: %s", index, exc)

        self._call(_delete)

    # -- routes ------------------------------------------------------------------------------

    def flush_routes(self, table: int) -> int:
        """Delete every route of ours (protocol :data:`RTPROT_IKEGATE`) in ``table``."""

        def _flush():
            ipr = self._ipr_get()
            count = 0
            for family in (socket.AF_INET, socket.AF_INET6):
                for route in ipr.get_routes(family=family, table=table):
                    if route.get("proto") != RTPROT_IKEGATE:
                        continue
                    dst = route.get("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
                    try:
                        ipr.route("del", dst=f"{dst}/{route['dst_len']}", table=table,
                                  proto=RTPROT_IKEGATE, scope=RT_SCOPE_NOWHERE, family=family)
                        count += 1
                    except Exception as exc:
                        log.debug("flushing route %s: %s", dst, exc)
            return count

        return self._call(_flush)

    def add_route(self, network: str, index: int, table: int) -> None:
        """Route ``network`` into link ``index``: queued on the netlink thread (in order with
        later changes) so the caller's event loop does not block."""
        family = socket.AF_INET6 if ":" in network else socket.AF_INET

        def _add():
            self._ipr_get().route("replace", dst=network, oif=index, table=table,
                                  proto=RTPROT_IKEGATE, family=family)

        self._post(_add, f"cannot route {network} into the TUN")

    def sync(self) -> None:
        """Wait until every queued route change is done."""
        self._call(lambda: None)

    def after_queued(self, func: Callable[[], object]) -> None:
        """Run ``func`` on the netlink thread once every change queued so far is done
        (without waiting here)."""
        self._post(func, "after the queued route changes")

    def delete_route(self, network: str, index: int, table: int, *, wait: bool = True) -> None:
        family = socket.AF_INET6 if ":" in network else socket.AF_INET

        def _delete():
            try:
                self._ipr_get().route("del", dst=network, oif=index, table=table,
                                      proto=RTPROT_IKEGATE, scope=RT_SCOPE_NOWHERE, family=family)
            except Exception as exc:  # gone with the link, or removed by the admin
                log.debug("deleting route %s: %s", network, exc)

        if wait:
            self._call(_delete)
        else:
            self._post(_delete, f"deleting route {network}")


IP_MTU, IPV6_MTU = 14, 24  # linux/in.h, linux/in6.h


def path_mtu(host: str) -> int | None:
    """The MTU the kernel would use toward ``host``: a cached path MTU if it learnt one,
    else the outgoing link's (``IP_MTU`` of a connected UDP socket: a route lookup in the
    kernel, some microseconds, where a netlink query through pyroute2 costs a millisecond);
    None if there is no route."""
    v6 = ":" in host
    with socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((host, 9))
            return sock.getsockopt(socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP, IPV6_MTU if v6 else IP_MTU)
        except OSError:
            return None


class RouteSet:
    """Reference-counted routes into the TUN: a prefix stays while some SA needs it.
    Changes are queued on the netlink thread (the event loop never waits for them)."""

    def __init__(self, netlink: Netlink, index: int, table: int = MAIN_TABLE) -> None:
        self.netlink = netlink
        self.index = index
        self.table = table
        self.users: dict[str, set[int]] = {}  # prefix -> inbound SPIs that route it
        self.claims: dict[int, list[str]] = {}  # inbound SPI -> the prefixes it claimed

    def add(self, owner: int, networks: Iterable[str]) -> None:
        claimed = self.claims.setdefault(owner, [])
        for network in networks:
            users = self.users.get(network)
            if users is None:
                self.users[network] = {owner}
                self.netlink.add_route(network, self.index, self.table)
            elif owner not in users:
                users.add(owner)
            else:
                continue
            claimed.append(network)

    def release(self, owner: int) -> None:
        """Drop ``owner``'s claim on every prefix; delete the prefixes nobody needs."""
        for network in self.claims.pop(owner, ()):
            users = self.users.get(network)
            if users is None:
                continue
            users.discard(owner)
            if not users:
                del self.users[network]
                self.netlink.delete_route(network, self.index, self.table, wait=False)

    def clear(self) -> None:
        for network in list(self.users):
            self.netlink.delete_route(network, self.index, self.table)
        self.users.clear()
        self.claims.clear()
