"""``ikegate status`` / ``statusall`` (text and ``--json``) with RADIUS: the control
handlers on a daemon whose engine authenticated a client through the scripted RADIUS
server of tests/ike/test_ike_eap_radius.py (EAP-MSCHAPv2 relayed, on the fake clock).

statusall shows each server (address, ports, reachable or not responding since when,
requests pending and counted per use), accounting and DAE; status shows, for an SA
authenticated through RADIUS, its Acct-Session-Id and the server that accepted it."""

from __future__ import annotations

import contextlib
import io
import json
import time
import types

from ikegate.control import commands, handlers
from ikegate.daemon.main import Daemon
from ikegate.dataplane.recording import RecordingDataPlane
from ikegate.ike.events import IkeSaUp
from ikegate.radius.client import RadiusServer
from ikegate.radius.settings import RadiusSettings

from ike.conftest import make_network, seed_layout  # noqa: F401  (fixtures)
from ike.initiator import WINDOWS10
from ike.test_ike_eap_radius import RADIUS_CONF, RADIUS_USERS, SECRET, SERVER, RadiusLink, ScriptedRadius


def _printed(printer, reply: dict) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        printer(reply)
    return out.getvalue()


def test_status_and_statusall_show_radius(make_network, tmp_path):  # noqa: F811
    server = ScriptedRadius(RADIUS_USERS)
    net = make_network(edits=RADIUS_CONF)
    link = RadiusLink(net, server)
    settings = RadiusSettings(servers=(RadiusServer("test", SERVER.host, SECRET),), tries=1, timeout=1.0)
    client_of_settings = settings.client()
    link.client = client_of_settings  # the engine's client made from the settings, as the daemon does
    net.gateway.set_radius(client_of_settings)
    daemon = Daemon(net.runtime, run_dir=tmp_path / "run", dataplane=RecordingDataPlane())
    daemon.loop = types.SimpleNamespace(time=lambda: net.now)
    daemon.gateway, daemon.radius_settings, daemon.started_at = net.gateway, settings, net.now

    carol = net.client(WINDOWS10, user="carol", password="carol-password")
    assert link.connect(carol).error is None and carol.established
    (up,) = net.events_of(IkeSaUp)

    status = handlers.status(daemon, {})
    (sa,) = status["sas"]
    assert sa["radius"] == {"session_id": up.session_id, "server": "test"}
    text = _printed(commands._status, status)
    assert f"RADIUS: Acct-Session-Id {up.session_id}, accepted by server 'test'" in text

    everything = handlers.statusall(daemon, {})
    json.dumps(everything)  # what --json prints
    radius = everything["radius"]
    (entry,) = radius["servers"]
    assert entry["name"] == "test" and entry["address"] == SERVER.host
    assert (entry["auth_port"], entry["acct_port"]) == (1812, 1813)
    assert entry["reachable"] is True and entry["down_since"] is None
    # the EAP-Identity response, the MS-CHAPv2 Response and the acknowledgement: 3 answered
    assert entry["auth"] == {"pending": 0, "requests": 3, "retransmits": 0, "answers": 3, "timeouts": 0}
    assert entry["acct"] is None
    assert radius["accounting"] is False and radius["dae"] is None
    text = _printed(commands._statusall, everything)
    assert "RADIUS (eap-radius):" in text
    assert f"  test: {SERVER.host} auth port 1812, acct port 1813, preference 0: reachable" in text
    assert "    authentication: 0 pending, 3 requests, 0 retransmits, 3 answers, 0 timeouts" in text
    assert "  accounting: off" in text and "  DAE: off" in text

    # the server goes silent: dave's login times out, the server is held down
    server.lose = 100
    dave = net.client(WINDOWS10, user="dave", password="dave-password")
    assert net.exchange(dave, dave.sa_init_request()).error is None
    identity_request = net.exchange(dave, dave.auth_request())
    assert net.send(dave, dave.eap_request(identity_request)) == []
    link.pump()
    pending = handlers.statusall(daemon, {})["radius"]["servers"][0]
    assert pending["auth"]["pending"] == 1 and pending["reachable"] is True
    before = time.time()
    for _ in range(3):
        net.advance(1.0)
        link.pump()
    (down,) = handlers.statusall(daemon, {})["radius"]["servers"]
    assert down["reachable"] is False and down["auth"]["timeouts"] == 1 and down["auth"]["retransmits"] == 1
    assert down["auth"]["pending"] == 0
    assert before - 5 <= down["down_since"] <= time.time()  # a Unix time
    text = _printed(commands._statusall, handlers.statusall(daemon, {}))
    assert f"  test: {SERVER.host} auth port 1812, acct port 1813, preference 0: not responding, tried last " \
           "since 20" in text


def test_statusall_without_radius_has_no_radius_part(make_network, tmp_path):  # noqa: F811
    net = make_network()
    daemon = Daemon(net.runtime, run_dir=tmp_path / "run", dataplane=RecordingDataPlane())
    daemon.loop = types.SimpleNamespace(time=lambda: net.now)
    daemon.gateway, daemon.radius_settings = net.gateway, RadiusSettings()
    carol = net.client(WINDOWS10, user="user1")
    assert net.connect(carol) is not None
    reply = handlers.statusall(daemon, {})
    assert reply["radius"] is None and reply["sas"][0]["radius"] is None
    assert "RADIUS" not in _printed(commands._statusall, reply)
