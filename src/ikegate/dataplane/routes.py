"""Netlink for the userspace data plane: the TUN link, the routes into it, path MTUs.

pyroute2 0.9's synchronous ``IPRoute`` drives its own asyncio loop and refuses to run in
a thread whose loop is already running (the daemon's).  :class:`Netlink` therefore owns
one ``IPRoute`` in one dedicated thread and every call is handed to that thread and
waited for: a route change costs well under a millisecond, like the synchronous netlink
calls of charon's kernel-netlink.

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

__all__ = ["RTPROT_IKEGATE", "Netlink", "RouteSet", "selector_networks"]

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
        family = socket.AF_INET6 if ":" in network else socket.AF_INET

        def _add():
            self._ipr_get().route("replace", dst=network, oif=index, table=table,
                                  proto=RTPROT_IKEGATE, family=family)

        self._call(_add)

    def delete_route(self, network: str, index: int, table: int) -> None:
        family = socket.AF_INET6 if ":" in network else socket.AF_INET

        def _delete():
            try:
                self._ipr_get().route("del", dst=network, oif=index, table=table,
                                      proto=RTPROT_IKEGATE, scope=RT_SCOPE_NOWHERE, family=family)
            except Exception as exc:  # gone with the link, or removed by the admin
                log.debug("deleting route %s: %s", network, exc)

        self._call(_delete)

    def path_mtu(self, host: str) -> int | None:
        """The MTU the kernel would use toward ``host``: a cached path MTU if it learnt
        one, else the MTU of the outgoing link; None if there is no route."""

        def _mtu():
            ipr = self._ipr_get()
            try:
                routes = ipr.route("get", dst=host)
            except Exception:
                return None
            if not routes:
                return None
            route = routes[0]
            metrics = route.get("RTA_METRICS")
            if metrics is not None:
                mtu = metrics.get("RTAX_MTU")
                if mtu:
                    return int(mtu)
            oif = route.get("RTA_OIF")
            if oif is None:
                return None
            links = ipr.get_links(oif)
            return links[0].get("IFLA_MTU") if links else None

        return self._call(_mtu)


class RouteSet:
    """Reference-counted routes into the TUN: a prefix stays while some SA needs it."""

    def __init__(self, netlink: Netlink, index: int, table: int = MAIN_TABLE) -> None:
        self.netlink = netlink
        self.index = index
        self.table = table
        self.users: dict[str, set[int]] = {}  # prefix -> inbound SPIs that route it

    def add(self, owner: int, networks: Iterable[str]) -> None:
        for network in networks:
            users = self.users.get(network)
            if users is None:
                self.users[network] = {owner}
                try:
                    self.netlink.add_route(network, self.index, self.table)
                except Exception as exc:
                    log.info("cannot route %s into the TUN: %s", network, exc)
            else:
                users.add(owner)

    def release(self, owner: int) -> None:
        """Drop ``owner``'s claim on every prefix; delete the prefixes nobody needs."""
        for network in [n for n, users in self.users.items() if owner in users]:
            users = self.users[network]
            users.discard(owner)
            if not users:
                del self.users[network]
                self.netlink.delete_route(network, self.index, self.table)

    def clear(self) -> None:
        for network in list(self.users):
            self.netlink.delete_route(network, self.index, self.table)
        self.users.clear()
