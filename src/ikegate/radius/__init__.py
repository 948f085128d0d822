"""RADIUS (RFC 2865/2866/3579/5176): packets, a sans-IO client, accounting and dynamic
authorisation, for ``rightauth=eap-radius`` and strongSwan's eap-radius settings."""
