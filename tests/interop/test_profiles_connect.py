"""Generated client profiles connect: the Android ``.sswan`` and the NetworkManager keyfile
for the seed setup are turned into strongSwan client configurations (remote address,
remote identity, CA, EAP identity and proposals taken from the profile, nothing else from
the test), which then connect to ikegate serving the seed and carry pings.

The profiles name the server by its certificate name (``--server vpn.example.org``, the
seed setup's server name); the client resolves it through an /etc/hosts of its own mount
namespace (IPv4 for the Android profile, IPv6 for NetworkManager).  As the apps do, the
Android client forces UDP encapsulation and both request an IPv4 and an IPv6 address.
"""

from __future__ import annotations

import argparse
import base64
import configparser
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ikegate.profiles import command

from .netns import ping


def _generate(kind: str, confdir, server: str, user: str, output) -> None:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--conn", "myvpn", "--server", server, "--user", user,
                              "--confdir", str(confdir), "--output", str(output)])
    args.profile_command = kind
    assert command.run(args) == 0


def _android_client_settings(path) -> dict:
    """A .sswan profile as ClientConn keywords plus the CA file it carries."""
    doc = json.loads(path.read_text())
    assert doc["type"] == "ikev2-eap"
    ca = path.with_name("android-ca.pem")
    der = base64.b64decode(doc["remote"]["cert"])
    ca.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    return dict(remote_addrs=doc["remote"]["addr"], remote_id=doc["remote"]["id"], eap_id=doc["local"]["eap_id"],
                proposals=doc["ike-proposal"], esp_proposals=doc["esp-proposal"], encap=True, ca=ca)


def _networkmanager_client_settings(path) -> dict:
    """A NetworkManager-strongswan keyfile as ClientConn keywords plus its CA file."""
    keyfile = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    keyfile.optionxform = str
    keyfile.read_string(path.read_text())
    vpn = keyfile["vpn"]
    assert vpn["service-type"] == "org.freedesktop.NetworkManager.strongswan"
    assert vpn["method"] == "eap" and vpn["virtual"] == "yes" and vpn["proposal"] == "yes"
    return dict(remote_addrs=vpn["address"], remote_id=vpn["remote-identity"], eap_id=vpn["user"],
                proposals=vpn["ike"].replace(";", ","), esp_proposals=vpn["esp"].replace(";", ","),
                encap=vpn["encap"] == "yes", ca=vpn["certificate"])


@pytest.mark.parametrize("kind, family", [("android", "ipv4"), ("networkmanager", "ipv6")])
def test_profile_connects_and_pings(topology, seed_setup, ikegate_gateway, strongswan_client_factory, tmp_path,
                                    kind, family):
    gw = topology.gateway
    gateway = ikegate_gateway(gw, seed_setup.confdir)
    user = "user1"
    profile = tmp_path / f"profile.{kind}"
    _generate(kind, seed_setup.confdir, seed_setup.server_name, user, profile)
    settings = (_android_client_settings if kind == "android" else _networkmanager_client_settings)(profile)
    ca = settings.pop("ca")
    assert settings["remote_addrs"] == seed_setup.server_name == settings["remote_id"]

    client = strongswan_client_factory(topology.clients[0], ca_certs=[ca], start=False,
                                       password=seed_setup.users[user], **settings)
    address = gw.v4[0] if family == "ipv4" else gw.v6[0]
    client.put("/etc/hosts", f"127.0.0.1 localhost\n{address} {seed_setup.server_name}\n")
    client.start()
    ok, out = client.initiate(timeout=20)
    assert ok, out + gateway.log_text()[-4000:]

    (ike,) = client.list_sas()
    assert ike["remote-host"] == address
    assert ike["remote-id"] == seed_setup.server_name
    # the profile's first (strongest) suite is what was negotiated
    assert (ike["encr-alg"], ike["encr-keysize"], ike["integ-alg"], ike["dh-group"]) == (
        "AES_CBC", "256", "HMAC_SHA2_384_192", "MODP_3072")
    (child,) = ike["child-sas"].values()
    assert (child["encr-alg"], child["encr-keysize"], child["integ-alg"]) == ("AES_CBC", "256", "HMAC_SHA2_384_192")
    assert ike["local-vips"] == ["192.0.2.1", "2001:db8::1"]
    assert ping(client.ns, topology.inner.v4[0], count=2, wait=2) == 2
    assert ping(client.ns, topology.inner.v6[0], count=2, wait=2) == 2
    (sa,) = gateway.status()["sas"]
    assert sa["remote"]["eap_id"] == user
