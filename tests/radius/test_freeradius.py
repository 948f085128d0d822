"""ikegate.radius against a real FreeRADIUS 3.2 (Debian ``freeradius``/``freeradius-utils``).

An independent implementation checks every authenticator of ours and we check its:

* ``RadiusClient`` sends Access-Requests (PAP, Message-Authenticator) to ``freeradius -X``
  and verifies its Access-Accept/-Reject; the MS-MPPE-Send/Recv-Key it encrypts (RFC 2548)
  decrypt to the values in its users file;
* the Accounting-Requests of :class:`ikegate.radius.accounting.Accounting` are accepted
  (Accounting-Response) and land in its detail file with our values;
* ``radclient`` sends Disconnect-Request and CoA-Request to :class:`ikegate.radius.dae.DaeServer`
  on a real UDP socket and reads our ACK/NAK; with a wrong secret it gets no answer.

The server (conftest.py) runs on 127.0.0.1 (loopback only) on random high ports with a
configuration directory of its own (nothing from /etc/freeradius is read); one server for
the module, started in about a second.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time

import pytest

from ikegate.dataplane.interface import SaCounters
from ikegate.ike.events import ChildSaDown, ChildSaInfo, ChildSaUp, Endpoint, IkeSaDown, IkeSaUp
from ikegate.radius.accounting import Accounting
from ikegate.radius.client import RadiusAnswer, RadiusClient, RadiusServer, RadiusTimeout
from ikegate.radius.dae import DaeServer, DaeSession
from ikegate.radius.packet import MICROSOFT, Attr, Code, MsAttr, Packet, decrypt_mppe_key, hide_password

from .conftest import RECV_KEY, SECRET, SEND_KEY, freeradius_missing, radclient

pytestmark = pytest.mark.skipif(freeradius_missing() is not None, reason=str(freeradius_missing()))


def exchange(client: RadiusClient, packet: Packet, kind: str = "auth", timeout: float = 5.0):
    """Run one request through the sans-IO client over a real UDP socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        start = time.monotonic()
        outputs = client.request(packet, 0.0, kind=kind, context="test")
        deadline = start + timeout
        while True:
            for item in outputs:
                if isinstance(item, (RadiusAnswer, RadiusTimeout)):
                    return item
                sock.sendto(item.data, (item.server.host, item.server.port))
            now = time.monotonic() - start
            wait = client.next_timer()
            if time.monotonic() > deadline:
                raise AssertionError("no answer and no timeout")
            sock.settimeout(max(0.01, min((wait if wait is not None else 1.0) - now, 1.0)))
            try:
                data, addr = sock.recvfrom(4096)
            except socket.timeout:
                outputs = client.tick(time.monotonic() - start)
                continue
            outputs = client.receive(data, Endpoint(addr[0], addr[1]), time.monotonic() - start)


def server(freeradius, secret=SECRET) -> RadiusServer:
    return RadiusServer("freeradius", "127.0.0.1", secret.encode(), auth_port=freeradius["auth"],
                        acct_port=freeradius["acct"], nas_identifier="ikegate-test")


def pap_request(password: str) -> Packet:
    """An Access-Request with User-Password, hidden with the authenticator the client
    will use (encode_request keeps a 16-octet authenticator it is given)."""
    packet = Packet(Code.ACCESS_REQUEST, authenticator=os.urandom(16))
    packet.add(Attr.USER_NAME, "alice")
    packet.add(Attr.USER_PASSWORD, hide_password(password, SECRET, packet.authenticator))
    return packet


def test_access_accept_verified_and_mppe_keys_decrypted(freeradius):
    client = RadiusClient([server(freeradius)], tries=2, timeout=1.0)
    answer = exchange(client, pap_request("correct horse"))
    assert isinstance(answer, RadiusAnswer), "FreeRADIUS refused our Access-Request"
    packet = answer.packet
    assert packet.code == Code.ACCESS_ACCEPT
    assert packet.get(Attr.CLASS) == b"group=staff"
    assert ipaddress.ip_address(packet.get(Attr.FRAMED_IP_ADDRESS)) == ipaddress.ip_address("10.99.0.7")
    assert packet.get_int(Attr.SESSION_TIMEOUT) == 3600
    send, = packet.vendor_attrs(MICROSOFT, MsAttr.MS_MPPE_SEND_KEY)
    recv, = packet.vendor_attrs(MICROSOFT, MsAttr.MS_MPPE_RECV_KEY)
    assert decrypt_mppe_key(send, answer.secret, answer.request_authenticator) == SEND_KEY
    assert decrypt_mppe_key(recv, answer.secret, answer.request_authenticator) == RECV_KEY


def test_wrong_password_is_rejected(freeradius):
    client = RadiusClient([server(freeradius)], tries=2, timeout=1.0)
    answer = exchange(client, pap_request("wrong"))
    assert isinstance(answer, RadiusAnswer) and answer.packet.code == Code.ACCESS_REJECT


def test_wrong_shared_secret_times_out(freeradius):
    # FreeRADIUS drops a request whose Message-Authenticator does not verify: no answer
    client = RadiusClient([server(freeradius, "not-the-secret")], tries=0, timeout=0.5)
    assert isinstance(exchange(client, pap_request("correct horse")), RadiusTimeout)


def _child(spi_in: int) -> ChildSaInfo:
    local, remote = Endpoint("198.51.100.1", 4500), Endpoint("203.0.113.7", 4500)
    return ChildSaInfo(
        ike_unique_id=1, child_unique_id=1, reqid=1, conn="rw", spi_in=spi_in, spi_out=1, protocol=3, encr_id=20,
        encr_key_bits=256, integ_id=None, key_in_encr=b"", key_in_integ=b"", key_out_encr=b"", key_out_integ=b"",
        esn=False, local=local, remote=remote, udp_encap=True, local_ts=(), remote_ts=(),
        virtual_ips=("10.99.0.7",), local_id="gw", remote_id="alice", eap_id="alice")


def test_accounting_records_reach_the_detail_file(freeradius):
    counters = {0xC1: SaCounters(bytes_in=(1 << 32) + 1234, bytes_out=5678, packets_in=90, packets_out=12)}
    acct = Accounting(counters.get, session_prefix=1700000000)
    client = RadiusClient([server(freeradius)], tries=2, timeout=1.0)
    info = _child(0xC1)
    acct.event(IkeSaUp(1, "rw", info.local, info.remote, "gw", "alice", "alice", ("10.99.0.7",),
                       radius_class=(b"group=staff",), session_id="1700000000-1"), 100.0)
    records = acct.event(ChildSaUp(info), 100.0)
    acct.event(ChildSaDown(info, "deleted by peer"), 160.0)
    records += acct.event(IkeSaDown(1, "rw", "deleted by peer", terminate_cause=1), 160.0)
    assert [r.status.name for r in records] == ["START", "STOP"]
    for record in records:
        answer = exchange(client, record.packet, kind="acct")
        assert isinstance(answer, RadiusAnswer) and answer.packet.code == Code.ACCOUNTING_RESPONSE
    detail = (freeradius["work"] / "detail").read_text()
    stop = detail.split("Acct-Status-Type = Stop")[1]
    for line in ['Acct-Session-Id = "1700000000-1"', 'User-Name = "alice"', "Acct-Input-Octets = 1234",
                 "Acct-Input-Gigawords = 1", "Acct-Output-Octets = 5678", "Acct-Input-Packets = 90",
                 "Acct-Output-Packets = 12", "Acct-Session-Time = 60", "Acct-Terminate-Cause = User-Request",
                 "Framed-IP-Address = 10.99.0.7", 'NAS-Identifier = "ikegate-test"', "Class = 0x67726f75703d7374616666",
                 'Calling-Station-Id = "203.0.113.7[4500]"', "NAS-Port-Type = Virtual"]:
        assert line in stop, line
    assert "Acct-Status-Type = Start" in detail


class DaeListener:
    """A DaeServer on a real UDP socket on loopback, answering from a thread."""

    def __init__(self, dae: DaeServer, sessions):
        self.dae, self.sessions = dae, sessions
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.killed: list[int] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            result = self.dae.handle(data, Endpoint(addr[0], addr[1]), self.sessions)
            self.killed += result.kill
            if result.reply is not None:
                self.sock.sendto(result.reply, addr)

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def dae_listener():
    sessions = [DaeSession(1, "carol", "1700000000-1", ("10.99.0.7",)),
                DaeSession(2, "dave", "1700000000-2", ("10.99.0.8",))]
    listener = DaeListener(DaeServer(SECRET), sessions)
    yield listener
    listener.close()


def test_radclient_disconnect_request_is_acked(freeradius, dae_listener):
    out = radclient(dae_listener.port, "disconnect", 'User-Name = "carol"\n')
    assert "Received Disconnect-ACK" in out, out
    assert dae_listener.killed == [1]
    out = radclient(dae_listener.port, "disconnect",
                    'Acct-Session-Id = "1700000000-2"\nMessage-Authenticator = 0x00\n')
    assert "Received Disconnect-ACK" in out, out
    assert dae_listener.killed == [1, 2]


def test_radclient_unknown_session_is_naked_503(freeradius, dae_listener):
    out = radclient(dae_listener.port, "disconnect", "Framed-IP-Address = 10.99.0.200\n")
    assert "Received Disconnect-NAK" in out and "Session-Context-Not-Found" in out, out
    assert dae_listener.killed == []


def test_radclient_coa_is_naked(freeradius, dae_listener):
    out = radclient(dae_listener.port, "coa", 'User-Name = "carol"\nSession-Timeout = 60\n')
    assert "Received CoA-NAK" in out and "Unsupported-Extension" in out, out
    assert dae_listener.killed == []


def test_radclient_with_wrong_secret_gets_no_answer(freeradius, dae_listener):
    out = radclient(dae_listener.port, "disconnect", 'User-Name = "carol"\n', secret="wrong-secret")
    assert "Received" not in out and ("No reply" in out or "no response" in out.lower()), out
    assert dae_listener.killed == []
