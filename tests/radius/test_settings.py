"""ikegate.radius.settings: strongSwan 5.9.8's charon.plugins.eap-radius.* read the same way
(eap_radius_plugin.c load_configs; defaults from conf/plugins/eap-radius.opt)."""

from __future__ import annotations

from ikegate.config.strongswan_conf import StrongswanConf, load_strongswan_conf
from ikegate.radius.settings import RadiusSettings


def conf(tmp_path, text: str):
    path = tmp_path / "strongswan.conf"
    path.write_text(text)
    return load_strongswan_conf(path)


def test_defaults_without_servers():
    settings = RadiusSettings.from_strongswan_conf(StrongswanConf())
    assert not settings.enabled and settings.client() is None
    assert (settings.tries, settings.timeout, settings.base) == (4, 2.0, 1.4)
    assert settings.nas_identifier == "strongSwan"
    assert not settings.accounting and settings.accounting_interval == 0
    assert settings.accounting_close_on_timeout and settings.station_id_with_port
    assert (settings.dae.enable, settings.dae.listen, settings.dae.port, settings.dae.secret) == (False, "0.0.0.0", 3799, None)


def test_legacy_single_server(tmp_path):
    settings = RadiusSettings.from_strongswan_conf(conf(tmp_path, """
charon {
    plugins {
        eap-radius {
            server = 192.0.2.10
            secret = "s3cret with blanks"
            port = 11812
            nas_identifier = gw1
            retransmit_tries = 2
            accounting = yes
            accounting_interval = 5m
        }
    }
}
"""))
    server, = settings.servers
    assert (server.name, server.address, server.auth_port, server.acct_port) == ("192.0.2.10", "192.0.2.10", 11812, 1813)
    assert server.secret == b"s3cret with blanks" and server.nas_identifier == "gw1"
    assert settings.tries == 2 and settings.accounting and settings.accounting_interval == 300
    assert "s3cret" not in repr(settings)


def test_legacy_server_without_secret_is_no_server(tmp_path):
    settings = RadiusSettings.from_strongswan_conf(conf(tmp_path, """
charon { plugins { eap-radius {
    server = 192.0.2.10
} } }
"""))
    assert not settings.enabled


def test_servers_section_with_fallbacks_and_skips(tmp_path):
    settings = RadiusSettings.from_strongswan_conf(conf(tmp_path, """
charon {
    plugins {
        eap-radius {
            port = 1645
            nas_identifier = global-nas
            retransmit_timeout = 3.5
            servers {
                primary {
                    address = 192.0.2.1
                    secret = one
                    auth_port = 2812
                    acct_port = 2813
                    preference = 99
                    retransmit_tries = 1
                }
                backup {
                    address = 2001:db8::2
                    secret = two
                    port = 3812
                    nas_identifier = backup-nas
                }
                third {
                    address = 192.0.2.3
                    secret = three
                }
                noaddress {
                    secret = x
                }
                nosecret {
                    address = 192.0.2.9
                }
                unresolvable {
                    address = does-not-exist.invalid
                    secret = y
                }
            }
            dae {
                enable = yes
                listen = 127.0.0.1
                port = 13799
                secret = daesecret
                clients = 192.0.2.1, 192.0.2.2
            }
        }
    }
}
"""), resolve=lambda host: None if host.endswith(".invalid") else host)
    names = [s.name for s in settings.servers]
    assert names == ["primary", "backup", "third"]
    primary, backup, third = settings.servers
    assert (primary.auth_port, primary.acct_port, primary.preference, primary.tries) == (2812, 2813, 99, 1)
    assert primary.nas_identifier == "global-nas" and primary.timeout == 3.5
    assert (backup.auth_port, backup.acct_port, backup.nas_identifier) == (3812, 1813, "backup-nas")
    assert third.auth_port == 1645 and third.preference == 0 and third.tries == 4
    assert settings.dae.active and settings.dae.secret == b"daesecret"
    assert (settings.dae.listen, settings.dae.port, settings.dae.clients) == ("127.0.0.1", 13799, ("192.0.2.1", "192.0.2.2"))
    client = settings.client()
    assert client is not None and len(client.servers) == 3


def test_dae_without_secret_is_inactive(tmp_path):
    settings = RadiusSettings.from_strongswan_conf(conf(tmp_path, """
charon { plugins { eap-radius { dae { enable = yes } } } }
"""))
    assert settings.dae.enable and not settings.dae.active
