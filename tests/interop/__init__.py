"""End-to-end tests: real strongSwan clients and gateways in network namespaces.

``netns`` builds namespaces and topologies, ``strongswan`` runs charon/swanctl clients
and starter/ipsec.conf servers, ``gateway`` launches ikegate itself, ``seed`` writes the
seed configuration, ``wireshark`` wraps tshark; ``conftest`` turns them into fixtures.
"""
