"""ikegate: an IKEv2/IPsec road-warrior VPN gateway that serves strongSwan configuration."""

__version__ = "0.1.0"
