"""What the sans-IO engine hands back to its caller: datagrams to send and events.

The engine never touches a socket, a device or a file: the daemon sends ``Send``
datagrams, gives ``ChildSaUp``/``ChildSaDown`` to the data plane and the updown runner,
``IkeSaKeys`` (and the ESP keys of ``ChildSaUp``) to the key log when one was asked for,
and logs or counts the rest.  No event shows key bytes in its repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Endpoint(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}[{self.port}]"


@dataclass(slots=True)
class Send:
    """One IKE datagram (without the non-ESP marker: the daemon adds it on port 4500
    unless ``marker`` is False, as for a NAT keepalive)."""

    data: bytes
    src: Endpoint
    dst: Endpoint
    marker: bool = True


@dataclass(slots=True)
class ChildSaInfo:
    """Everything the data plane and updown need about one CHILD SA (both directions)."""

    ike_unique_id: int
    child_unique_id: int
    reqid: int
    conn: str
    spi_in: int  # ours (the peer sends with it)
    spi_out: int  # the peer's
    protocol: int  # ProtocolId.ESP
    encr_id: int
    encr_key_bits: int
    integ_id: int | None
    key_in_encr: bytes = field(repr=False)
    key_in_integ: bytes = field(repr=False)
    key_out_encr: bytes = field(repr=False)
    key_out_integ: bytes = field(repr=False)
    esn: bool
    local: Endpoint  # outer addresses and ports
    remote: Endpoint
    udp_encap: bool
    local_ts: tuple  # tuple[Selector, ...]
    remote_ts: tuple
    virtual_ips: tuple  # the peer's virtual IPs (strings)
    local_id: str
    remote_id: str
    eap_id: str | None
    interface: str | None = None
    mark_in: int = 0
    mark_out: int = 0
    # for RADIUS accounting: the IKE SA's session (IkeSaUp.session_id) and Class attributes
    session_id: str = ""
    radius_class: tuple = ()


@dataclass(slots=True)
class IkeSaUp:
    """An IKE SA was established by IKE_AUTH (not by a rekey: that is :class:`IkeSaRekeyed`).

    For RADIUS accounting: ``session_id`` (strongSwan's Acct-Session-Id,
    ``<gateway start time>-<unique id of the first IKE SA>``) stays the same across IKE
    rekeys; ``radius_class`` are the Class attributes of the Access-Accept (empty without
    eap-radius); ``radius`` is True when the peer authenticated through RADIUS;
    ``interim_interval`` the Acct-Interim-Interval it sent (None if it sent none)."""

    unique_id: int
    conn: str
    local: Endpoint
    remote: Endpoint
    local_id: str
    remote_id: str
    eap_id: str | None
    virtual_ips: tuple
    session_id: str = ""
    radius_class: tuple = ()
    radius: bool = False
    interim_interval: int | None = None


@dataclass(slots=True)
class IkeSaKeys:
    """The SK_e/SK_a keys of a new IKE SA, for the key log (``ikegate start --keylog``).

    Emitted only when the gateway exports keys (``Gateway.export_keys``), once per IKE SA,
    as soon as its keys exist (IKE_SA_INIT, or an IKE rekey).  ``proposal`` is the selected
    :class:`~ikegate.proposal.Proposal`; ``sk_ai``/``sk_ar`` are empty for AEAD ciphers.
    Key bytes never appear in the repr."""

    unique_id: int
    spi_i: bytes
    spi_r: bytes
    proposal: object
    sk_ei: bytes = field(repr=False)
    sk_er: bytes = field(repr=False)
    sk_ai: bytes = field(repr=False)
    sk_ar: bytes = field(repr=False)


@dataclass(slots=True)
class IkeSaDown:
    """An established IKE SA went down.  ``terminate_cause`` is the RFC 2866
    Acct-Terminate-Cause for accounting (``ikegate.radius.packet.TerminateCause`` values:
    1 User-Request by default as in strongSwan, 3 Lost-Service when the peer stopped
    answering, 5 Session-Timeout at its hard lifetime or RADIUS Session-Timeout, 6
    Admin-Reset for ``ikegate kill``/a Disconnect-Request, 7 Admin-Reboot at shutdown);
    ``session_id`` as in :class:`IkeSaUp`."""

    unique_id: int
    conn: str
    reason: str
    terminate_cause: int = 1
    session_id: str = ""


@dataclass(slots=True)
class ChildSaUp:
    """A CHILD SA to install.  ``rekey_of`` is the SA it replaces (a rekey: install, but
    no updown, as strongSwan's updown plugin only sees up and down)."""

    info: ChildSaInfo
    rekey_of: ChildSaInfo | None = None


@dataclass(slots=True)
class ChildSaDown:
    """A CHILD SA to remove.  ``replaced``: it was rekeyed, its successor stays (no updown)."""

    info: ChildSaInfo
    reason: str
    replaced: bool = False


@dataclass(slots=True)
class IkeSaRekeyed:
    """The IKE SA ``old_unique_id`` was replaced by ``new_unique_id`` (same peer, same CHILD SAs)."""

    old_unique_id: int
    new_unique_id: int


@dataclass(slots=True)
class ChildSaUpdated:
    """The outer addresses or encapsulation of an installed CHILD SA changed (MOBIKE, NAT)."""

    info: ChildSaInfo
