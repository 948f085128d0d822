"""ikegate.radius.accounting: the Accounting-Requests of a scripted life of an IKE SA
(RFC 2866; attribute choice and timing as strongSwan's eap_radius_accounting.c)."""

from __future__ import annotations

import ipaddress

from ikegate.dataplane.interface import SaCounters
from ikegate.ike.events import (ChildSaDown, ChildSaInfo, ChildSaUp, Endpoint, IkeSaDown, IkeSaRekeyed,
                                IkeSaUp)
from ikegate.radius.accounting import Accounting
from ikegate.radius.packet import AcctStatusType, Attr, Code, TerminateCause, decode, encode_request

LOCAL = Endpoint("198.51.100.1", 4500)
REMOTE = Endpoint("203.0.113.7", 4500)


def child(ike: int, child_id: int, spi_in: int) -> ChildSaInfo:
    return ChildSaInfo(
        ike_unique_id=ike, child_unique_id=child_id, reqid=1, conn="rw", spi_in=spi_in, spi_out=spi_in + 1,
        protocol=3, encr_id=20, encr_key_bits=256, integ_id=None, key_in_encr=b"", key_in_integ=b"",
        key_out_encr=b"", key_out_integ=b"", esn=False, local=LOCAL, remote=REMOTE, udp_encap=True,
        local_ts=(), remote_ts=(), virtual_ips=("10.10.0.2",), local_id="gw", remote_id="carol@example.org",
        eap_id="carol")


def up(unique_id=1, **extra) -> IkeSaUp:
    return IkeSaUp(unique_id, "rw", LOCAL, REMOTE, "gw", "carol@example.org", "carol", ("10.10.0.2", "fd00::2"),
                   **extra)


class Counters:
    """The data plane's counters by inbound SPI (what ``dataplane.counters`` returns)."""

    def __init__(self):
        self.by_spi: dict[int, SaCounters] = {}

    def set(self, spi, bytes_in, bytes_out, packets_in, packets_out):
        self.by_spi[spi] = SaCounters(bytes_in=bytes_in, bytes_out=bytes_out, packets_in=packets_in,
                                      packets_out=packets_out)

    def __call__(self, spi):
        return self.by_spi.get(spi)


def attrs(record):
    """The record as sent (encoded and decoded again), as a dict of first values."""
    packet = decode(encode_request(record.packet, b"acct-secret"))
    assert packet.code == Code.ACCOUNTING_REQUEST
    return packet


def test_start_interim_stop_with_rekeys():
    counters = Counters()
    acct = Accounting(counters, interval=60, session_prefix=1700000000)
    assert acct.event(up(radius_class=(b"class-1", b"class-2"), session_id="1700000000-1"), 10.0) == []
    first = child(1, 1, 0xC0000001)
    start, = acct.event(ChildSaUp(first), 10.0)
    assert start.status == AcctStatusType.START and start.unique_id == 1
    p = attrs(start)
    assert p.get_int(Attr.ACCT_STATUS_TYPE) == AcctStatusType.START
    assert p.get_str(Attr.ACCT_SESSION_ID) == "1700000000-1"
    assert p.get_all(Attr.CLASS) == [b"class-1", b"class-2"]
    assert p.get_str(Attr.USER_NAME) == "carol"
    assert p.get_int(Attr.NAS_PORT_TYPE) == 5 and p.get_int(Attr.SERVICE_TYPE) == 2
    assert p.get_int(Attr.NAS_PORT) == 1 and p.get_str(Attr.NAS_PORT_ID) == "rw"
    assert ipaddress.ip_address(p.get(Attr.NAS_IP_ADDRESS)) == ipaddress.ip_address("198.51.100.1")
    assert p.get_str(Attr.CALLED_STATION_ID) == "198.51.100.1[4500]"
    assert p.get_str(Attr.CALLING_STATION_ID) == "203.0.113.7[4500]"
    assert ipaddress.ip_address(p.get(Attr.FRAMED_IP_ADDRESS)) == ipaddress.ip_address("10.10.0.2")
    assert ipaddress.ip_address(p.get(Attr.FRAMED_IPV6_ADDRESS)) == ipaddress.ip_address("fd00::2")
    assert p.get(Attr.ACCT_INPUT_OCTETS) is None  # no counters in a Start
    assert acct.next_timer() == 70.0

    # traffic, then a CHILD SA rekey: the old SA's last counters are kept
    counters.set(0xC0000001, 1000, 2000, 10, 20)
    rekeyed = child(1, 2, 0xC0000003)
    assert acct.event(ChildSaUp(rekeyed, rekey_of=first), 30.0) == []
    assert acct.event(ChildSaDown(first, "rekeyed", replaced=True), 30.0) == []
    del counters.by_spi[0xC0000001]  # removed from the data plane after the event
    counters.set(0xC0000003, 500, 700, 5, 7)

    interim, = acct.tick(70.0)
    p = attrs(interim)
    assert p.get_int(Attr.ACCT_STATUS_TYPE) == AcctStatusType.INTERIM_UPDATE
    assert (p.get_int(Attr.ACCT_INPUT_OCTETS), p.get_int(Attr.ACCT_OUTPUT_OCTETS)) == (1500, 2700)
    assert (p.get_int(Attr.ACCT_INPUT_PACKETS), p.get_int(Attr.ACCT_OUTPUT_PACKETS)) == (15, 27)
    assert p.get_int(Attr.ACCT_SESSION_TIME) == 60
    assert p.get(Attr.ACCT_INPUT_GIGAWORDS) is None
    assert acct.next_timer() == 130.0 and acct.tick(100.0) == []

    # an IKE rekey: same session, new unique id; the old IKE SA's Down is not a Stop
    assert acct.event(IkeSaRekeyed(1, 5), 80.0) == []
    assert acct.event(IkeSaDown(1, "rw", "rekeyed"), 80.0) == []
    rekeyed.ike_unique_id = 5
    assert acct.session_of(5) == "1700000000-1"

    # the peer deletes: Stop with User-Request and everything carried
    counters.set(0xC0000003, (5 << 32) + 10, 800, 6, 8)
    assert acct.event(ChildSaDown(rekeyed, "deleted by peer"), 100.0) == []
    del counters.by_spi[0xC0000003]
    stop, = acct.event(IkeSaDown(5, "rw", "deleted by peer", terminate_cause=1), 100.0)
    p = attrs(stop)
    assert stop.unique_id == 5 and p.get_int(Attr.ACCT_STATUS_TYPE) == AcctStatusType.STOP
    assert p.get_str(Attr.ACCT_SESSION_ID) == "1700000000-1"
    assert p.get_int(Attr.NAS_PORT) == 5
    assert p.get_int(Attr.ACCT_INPUT_OCTETS) == 1010 and p.get_int(Attr.ACCT_INPUT_GIGAWORDS) == 5
    assert p.get_int(Attr.ACCT_OUTPUT_OCTETS) == 2800 and p.get(Attr.ACCT_OUTPUT_GIGAWORDS) is None
    assert (p.get_int(Attr.ACCT_INPUT_PACKETS), p.get_int(Attr.ACCT_OUTPUT_PACKETS)) == (16, 28)
    assert p.get_int(Attr.ACCT_SESSION_TIME) == 90
    assert p.get_int(Attr.ACCT_TERMINATE_CAUSE) == TerminateCause.USER_REQUEST
    assert acct.sessions == {} and acct.next_timer() is None


def test_stop_cause_from_event_override_or_reason():
    acct = Accounting(Counters(), session_prefix=7)
    for uid, down, cause in [
        # the engine's cause (IkeSaDown.terminate_cause) wins ...
        (1, IkeSaDown(1, "rw", "gateway shutting down", terminate_cause=TerminateCause.ADMIN_REBOOT),
         TerminateCause.ADMIN_REBOOT),
        # ... and without one (0) it is guessed from the reason, as strongSwan's alerts map
        (2, IkeSaDown(2, "rw", "peer not responding", terminate_cause=0), TerminateCause.LOST_SERVICE),
        (3, IkeSaDown(3, "rw", "IKE_SA lifetime expired", terminate_cause=0), TerminateCause.SESSION_TIMEOUT),
        (4, IkeSaDown(4, "rw", "deleted by the administrator (ikegate kill)", terminate_cause=0),
         TerminateCause.ADMIN_RESET),
        (5, IkeSaDown(5, "rw", "deleted by peer", terminate_cause=0), TerminateCause.USER_REQUEST),
    ]:
        acct.event(up(uid), 0.0)
        acct.event(ChildSaUp(child(uid, uid, 0x1000 + uid)), 0.0)
        stop, = acct.event(down, 5.0)
        assert attrs(stop).get_int(Attr.ACCT_TERMINATE_CAUSE) == cause
        assert attrs(stop).get_str(Attr.ACCT_SESSION_ID) == f"7-{uid}"  # strongSwan's format by default
    acct.event(up(9), 0.0)
    acct.event(ChildSaUp(child(9, 9, 0x9999)), 0.0)
    acct.set_cause(9, TerminateCause.ADMIN_RESET)
    stop, = acct.event(IkeSaDown(9, "rw", "deleted by peer", terminate_cause=1), 1.0)
    assert attrs(stop).get_int(Attr.ACCT_TERMINATE_CAUSE) == TerminateCause.ADMIN_RESET


def test_no_start_no_stop_and_interval_from_access_accept():
    acct = Accounting(Counters(), interval=0, requires_vip=True)
    acct.event(IkeSaUp(1, "rw", LOCAL, REMOTE, "gw", "carol", None, ()), 0.0)
    assert acct.event(ChildSaUp(child(1, 1, 0x100)), 0.0) == []  # no virtual IP: no accounting
    assert acct.event(IkeSaDown(1, "rw", "deleted by peer"), 1.0) == []  # never started: no Stop
    assert acct.event(IkeSaDown(77, "rw", "deleted by peer"), 1.0) == []  # unknown SA
    acct = Accounting(Counters(), interval=0)
    acct.event(up(2, interim_interval=30), 0.0)  # Acct-Interim-Interval of the Access-Accept
    acct.event(ChildSaUp(child(2, 2, 0x200)), 0.0)
    assert acct.next_timer() == 30.0
    acct.event(up(3), 0.0)
    acct.event(ChildSaUp(child(3, 3, 0x300)), 0.0)
    assert acct.next_timer() == 30.0  # SA 3 has no interim updates at all


def test_station_id_without_port_and_ipv6_nas():
    acct = Accounting(Counters(), station_id_with_port=False)
    local, remote = Endpoint("2001:db8::1", 4500), Endpoint("2001:db8::7", 4500)
    acct.event(IkeSaUp(1, "rw", local, remote, "gw", "dave", None, ("10.0.0.9",)), 0.0)
    start, = acct.event(ChildSaUp(child(1, 1, 0x100)), 0.0)
    p = attrs(start)
    assert p.get_str(Attr.CALLED_STATION_ID) == "2001:db8::1"
    assert p.get_str(Attr.CALLING_STATION_ID) == "2001:db8::7"
    assert ipaddress.ip_address(p.get(Attr.NAS_IPV6_ADDRESS)) == ipaddress.ip_address("2001:db8::1")
    assert p.get(Attr.NAS_IP_ADDRESS) is None
    assert p.get_str(Attr.USER_NAME) == "dave"  # no EAP: the IKE identity


def test_configure_on_reload_moves_running_sessions_to_the_new_interval():
    from ikegate.radius.settings import RadiusSettings

    acct = Accounting(Counters(), interval=0, session_prefix=1700000000)
    acct.event(up(1), 10.0)
    acct.event(ChildSaUp(child(1, 1, 0xC0000001)), 10.0)  # Start, no Interim-Updates
    acct.event(up(2, interim_interval=300), 10.0)  # the Access-Accept's interval wins
    acct.event(ChildSaUp(child(2, 2, 0xC0000011)), 10.0)
    assert acct.next_timer() == 310.0
    acct.configure(RadiusSettings(accounting=True, accounting_interval=30), 100.0)
    assert acct.sessions[1].next_interim == 100.0  # last update (10 s) + 30 s is past: at once
    assert acct.sessions[2].next_interim == 310.0
    interim, = acct.tick(100.0)
    assert interim.status == AcctStatusType.INTERIM_UPDATE and interim.session_id == "1700000000-1"
    assert acct.next_timer() == 130.0
    acct.configure(RadiusSettings(accounting=True, accounting_interval=0), 110.0)
    assert acct.sessions[1].next_interim is None
    # accounting turned off: running sessions go on to their Stop, new IKE SAs are not accounted
    acct.new_sessions = False
    acct.event(up(3), 120.0)
    assert acct.event(ChildSaUp(child(3, 3, 0xC0000021)), 120.0) == []
    stop, = acct.event(IkeSaDown(1, "rw", "deleted by peer"), 130.0)
    assert stop.status == AcctStatusType.STOP and stop.session_id == "1700000000-1"
