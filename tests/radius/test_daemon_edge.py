"""ikegate.daemon.radius.RadiusEdge inside the daemon, on a real event loop, against a real
FreeRADIUS: accounting Start / Interim-Update / Stop of an IKE SA established by the
engine, and a Disconnect-Request sent with radclient deleting it through the DAE socket.

The IKE SA is made by the in-memory test initiator of tests/ike (the engine is the real
one, on the loop's clock); the daemon is ``ikegate.daemon.main.Daemon`` with the
recording data plane; only its IKE sockets are missing (its Delete goes nowhere)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from ikegate.daemon.main import Daemon
from ikegate.dataplane.recording import RecordingDataPlane
from ikegate.ike.sa import ESTABLISHED
from ikegate.radius.client import RadiusServer
from ikegate.radius.settings import DaeSettings, RadiusSettings

from ike.conftest import make_network, seed_layout  # noqa: F401  (fixtures)
from ike.initiator import WINDOWS10

from .conftest import SECRET, freeradius_missing, radclient

pytestmark = pytest.mark.skipif(freeradius_missing() is not None, reason=str(freeradius_missing()))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(detail: str) -> list[dict[str, str]]:
    """The detail file's records as attribute -> value (first value)."""
    records = []
    for block in detail.split("\n\n"):
        record = {}
        for line in block.splitlines()[1:]:
            name, _, value = line.strip().partition(" = ")
            record.setdefault(name, value.strip('"'))
        if record:
            records.append(record)
    return records


def test_accounting_and_disconnect_through_the_daemon(freeradius, make_network, tmp_path):  # noqa: F811
    dae_port = _free_port()
    settings = RadiusSettings(
        servers=(RadiusServer("freeradius", "127.0.0.1", SECRET.encode(), auth_port=freeradius["auth"],
                              acct_port=freeradius["acct"], nas_identifier="edge-test"),),
        accounting=True, accounting_interval=1,
        dae=DaeSettings(enable=True, listen="127.0.0.1", port=dae_port, secret=SECRET.encode()),
    )

    async def scenario():
        loop = asyncio.get_running_loop()
        net = make_network()
        net.now = loop.time()  # the engine's timers on the loop's clock
        daemon = Daemon(net.runtime, run_dir=tmp_path / "run", dataplane=RecordingDataPlane())
        daemon.loop, daemon.gateway, daemon.radius_settings = loop, net.gateway, settings
        daemon._open_radius()
        assert daemon.radius is not None and daemon.radius.dae_socket is not None
        client = net.client(WINDOWS10, user="user1")
        assert net.connect(client) is not None
        daemon.process(net.events)  # IkeSaUp, ChildSaUp: installed, accounting Start
        net.events.clear()
        vips = list(net.sa_of(client).vips)
        await asyncio.sleep(1.6)  # one Interim-Update (every second)
        out = await loop.run_in_executor(None, radclient, dae_port, "disconnect", 'User-Name = "user1"\n')
        assert "Received Disconnect-ACK" in out, out
        sa = net.sa_of(client)
        assert sa is None or sa.state != ESTABLISHED
        out = await loop.run_in_executor(None, radclient, dae_port, "disconnect", 'User-Name = "user1"\n')
        assert "Received Disconnect-NAK" in out, out  # nothing left to disconnect
        await daemon.radius.drain()
        daemon.radius.close()
        return daemon, vips

    daemon, vips = asyncio.run(scenario())
    assert daemon.dataplane.installed == {}  # the CHILD SA was removed
    records = _records((freeradius["work"] / "detail").read_text())
    kinds = [r.get("Acct-Status-Type") for r in records]
    assert kinds[0] == "Start" and kinds[-1] == "Stop" and "Interim-Update" in kinds, kinds
    assert len({r["Acct-Session-Id"] for r in records}) == 1
    stop = records[-1]
    assert stop["User-Name"] == "user1" and stop["NAS-Identifier"] == "edge-test"
    assert stop["Acct-Terminate-Cause"] == "Admin-Reset"
    assert stop["Framed-IP-Address"] == next(v for v in vips if "." in v)
    assert stop.get("Framed-IPv6-Address") in [v for v in vips if ":" in v] + [None]
    assert int(stop["Acct-Session-Time"]) >= 1


def test_edge_without_servers_keeps_dae(make_network, tmp_path):  # noqa: F811
    """DAE alone (no RADIUS server): the edge opens only the DAE socket; a request with a
    wrong secret is dropped without an answer, nobody is killed."""
    dae_port = _free_port()
    settings = RadiusSettings(dae=DaeSettings(enable=True, listen="127.0.0.1", port=dae_port, secret=b"dae"))

    async def scenario():
        loop = asyncio.get_running_loop()
        net = make_network()
        net.now = loop.time()
        daemon = Daemon(net.runtime, run_dir=tmp_path / "run", dataplane=RecordingDataPlane())
        daemon.loop, daemon.gateway, daemon.radius_settings = loop, net.gateway, settings
        daemon._open_radius()
        client = net.client(WINDOWS10, user="user1")
        assert net.connect(client) is not None
        daemon.process(net.events)
        net.events.clear()
        out = await loop.run_in_executor(None, radclient, dae_port, "disconnect", 'User-Name = "user1"\n',
                                         "not-dae")
        assert "Received" not in out, out
        assert net.sa_of(client).state == ESTABLISHED
        out = await loop.run_in_executor(None, radclient, dae_port, "disconnect", 'User-Name = "user1"\n', "dae")
        assert "Received Disconnect-ACK" in out, out
        assert net.sa_of(client) is None or net.sa_of(client).state != ESTABLISHED
        daemon.radius.close()

    asyncio.run(scenario())


def test_unanswered_accounting_start_deletes_the_sa(make_network, tmp_path):  # noqa: F811
    """strongSwan (eap_radius_handle_timeout): no accounting server answers the Start, so
    the IKE SA is deleted.  The server here is a closed port on loopback (the ICMP errors
    only log); with one try of 0.3 s the timeout comes at once."""
    dead = _free_port()
    settings = RadiusSettings(
        servers=(RadiusServer("dead", "127.0.0.1", b"x", auth_port=dead, acct_port=dead),),
        tries=0, timeout=0.3, accounting=True)

    async def scenario():
        loop = asyncio.get_running_loop()
        net = make_network()
        net.now = loop.time()
        daemon = Daemon(net.runtime, run_dir=tmp_path / "run", dataplane=RecordingDataPlane())
        daemon.loop, daemon.gateway, daemon.radius_settings = loop, net.gateway, settings
        daemon._open_radius()
        client = net.client(WINDOWS10, user="user1")
        assert net.connect(client) is not None
        daemon.process(net.events)
        assert net.sa_of(client).state == ESTABLISHED
        await asyncio.sleep(0.8)
        sa = net.sa_of(client)
        assert sa is None or sa.state != ESTABLISHED
        assert daemon.dataplane.installed == {}
        await daemon.radius.drain(0.5)  # the Stop is not answered either: drain gives up
        daemon.radius.close()

    asyncio.run(scenario())


def _load_conf(tmp_path, text: str):
    from ikegate.config.strongswan_conf import load_strongswan_conf

    path = tmp_path / "strongswan.conf"
    path.write_text(text)
    return load_strongswan_conf(path)


def _eap_radius_conf(freeradius, *, nas: str, interval: int, dae: str) -> str:
    """strongswan.conf text (one setting per line) for the module's FreeRADIUS."""
    return f"""charon {{
    plugins {{
        eap-radius {{
            accounting = yes
            accounting_interval = {interval}
            servers {{
                freeradius {{
                    address = 127.0.0.1
                    secret = {SECRET}
                    auth_port = {freeradius["auth"]}
                    acct_port = {freeradius["acct"]}
                    nas_identifier = {nas}
                }}
            }}
            dae {{
{dae}
            }}
        }}
    }}
}}
"""


def test_reload_applies_accounting_and_dae(freeradius, make_network, tmp_path):  # noqa: F811
    """``ikegate reload`` (Daemon._reload_radius with a new strongswan.conf): the running
    session keeps its Acct-Session-Id and gets Interim-Updates at the new interval, through
    the new server settings (NAS-Identifier); the DAE listener moves to the new port with
    the new secret (the old port is closed); a listen address this host does not have
    keeps the listener where it was; DAE disabled closes it."""
    port1, port2 = _free_port(), _free_port()
    before = _eap_radius_conf(freeradius, nas="reload-before", interval=0,
                              dae=f"enable = yes\nlisten = 127.0.0.1\nport = {port1}\nsecret = dae-one")
    after = _eap_radius_conf(freeradius, nas="reload-after", interval=1,
                             dae=f"enable = yes\nlisten = 127.0.0.1\nport = {port2}\nsecret = dae-two")
    elsewhere = after.replace("listen = 127.0.0.1", "listen = 192.0.2.77")
    disabled = after.replace("enable = yes", "enable = no")

    async def scenario():
        loop = asyncio.get_running_loop()
        net = make_network()
        net.now = loop.time()
        daemon = Daemon(net.runtime, run_dir=tmp_path / "run", dataplane=RecordingDataPlane())
        daemon.loop, daemon.gateway = loop, net.gateway
        daemon.radius_settings = RadiusSettings.from_strongswan_conf(_load_conf(tmp_path, before))
        daemon._open_radius()
        client = net.client(WINDOWS10, user="user1")
        assert net.connect(client) is not None
        daemon.process(net.events)  # accounting Start (no Interim-Updates: interval 0)
        net.events.clear()
        edge = daemon.radius
        session = edge.accounting.session_of(net.sa_of(client).unique_id)
        await asyncio.sleep(0.3)
        assert edge.accounting.next_timer() is None

        daemon._reload_radius(_load_conf(tmp_path, after))
        assert daemon.radius is edge and edge.dae_bound == ("127.0.0.1", port2)
        assert edge.accounting.session_of(net.sa_of(client).unique_id) == session
        await asyncio.sleep(1.6)  # at least one Interim-Update at the new interval
        out = await loop.run_in_executor(None, radclient, port1, "disconnect", 'User-Name = "nobody"\n',
                                         "dae-one")
        assert "Received" not in out, out  # the old listener is gone
        out = await loop.run_in_executor(None, radclient, port2, "disconnect", 'User-Name = "nobody"\n',
                                         "dae-one")
        assert "Received" not in out, out  # the old secret no longer works
        out = await loop.run_in_executor(None, radclient, port2, "disconnect", 'User-Name = "nobody"\n',
                                         "dae-two")
        assert "Received Disconnect-NAK" in out, out

        daemon._reload_radius(_load_conf(tmp_path, elsewhere))  # 192.0.2.77 is not ours: bind fails
        assert edge.dae_bound == ("127.0.0.1", port2) and edge.dae is not None
        daemon._reload_radius(_load_conf(tmp_path, disabled))
        assert edge.dae_socket is None and edge.dae is None
        out = await loop.run_in_executor(None, radclient, port2, "disconnect", 'User-Name = "user1"\n',
                                         "dae-two")
        assert "Received" not in out, out
        assert net.sa_of(client).state == ESTABLISHED
        daemon.process(net.gateway.kill([net.sa_of(client)], "test over", loop.time()))  # the Stop
        await edge.drain()
        edge.close()
        return session

    session = asyncio.run(scenario())
    records = [r for r in _records((freeradius["work"] / "detail").read_text())
               if r.get("Acct-Session-Id") == session]
    kinds = [r.get("Acct-Status-Type") for r in records]
    assert kinds[0] == "Start" and kinds[-1] == "Stop" and "Interim-Update" in kinds, kinds
    assert records[0]["NAS-Identifier"] == "reload-before"
    assert {r["NAS-Identifier"] for r in records[1:]} == {"reload-after"}
