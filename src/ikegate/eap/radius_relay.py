"""``rightauth=eap-radius``: the EAP conversation relayed to a RADIUS server, as
strongSwan's eap-radius plugin runs it (eap_radius.c, radius_client.c, radius_socket.c).

One :class:`RadiusEapSession` per IKE SA, sans-IO: it says what to send to the client
and what to send to RADIUS, but sends nothing itself; the IKE layer carries its
Access-Requests through the gateway's :class:`~ikegate.radius.client.RadiusClient` and
hands the answers back.

The conversation:

1. With ``eap_identity`` set, the gateway asks the EAP-Identity itself (as for local EAP,
   :mod:`ikegate.eap.identity`); unset, the IKE identity stands in and RADIUS is asked at
   once, in the first IKE_AUTH round.
2. The first Access-Request carries ``User-Name`` = ``id_prefix`` + the identity and an
   EAP-Identity response the gateway builds from it (``charon.plugins.eap-radius.eap_start
   = no``, the default), or an empty EAP-Message (EAP-Start) with ``eap_start = yes``.
   strongSwan treats an Access-Accept to this first request (a Microsoft NPS quirk) as a
   reject.
3. Each EAP response of the client then goes to RADIUS in an Access-Request (EAP-Message
   split at 253 octets, the server's last State echoed, Message-Authenticator, the NAS
   attributes of :func:`nas_attributes`); an Access-Challenge's EAP-Message goes to the
   client, an Access-Accept ends in EAP-Success (the identifier of the client's last
   response, as strongSwan builds it; the server's own EAP-Success is not relayed), an
   Access-Reject, a Challenge without EAP-Message or no answer at all in EAP-Failure.
4. The MSK is MS-MPPE-Recv-Key | MS-MPPE-Send-Key, zero-padded to 64 octets
   (radius_socket.c ``decrypt_msk``); no key, no success.  The Access-Accept's
   attributes the gateway uses become :class:`RadiusAttributes`.

strongSwan checks the client's responses only for their code (a non-Response ends in
EAP-Failure) and, once RADIUS chose a method, their type (an EAP-Nak goes through: the
server decides); so does this session, and it also requires the identifier of the
request the client answers.  No secret (MSK, MPPE keys, the shared secret) is logged or
kept in a repr.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ikegate.eap.identity import (
    IdentityRule,
    build_identity_request,
    identity_matches,
    identity_of_response,
)
from ikegate.eap.mschapv2 import printable
from ikegate.eap.packet import EapDecodeError, EapPacket, decode
from ikegate.radius.packet import (
    MICROSOFT,
    Attr,
    Code,
    MsAttr,
    Packet,
    RadiusError,
    decrypt_mppe_key,
    eap_attributes,
    join_eap,
)
from ikegate.wire.constants import EapCode, EapType

__all__ = ["RadiusAttributes", "RadiusEapSession", "RelayOptions", "RelayStep", "nas_attributes", "station_id"]

CONTINUE = "continue"  # send ``eap`` to the client
RADIUS = "radius"  # send ``request`` to RADIUS and wait for the answer
SUCCESS = "success"
FAILURE = "failure"

NAS_PORT_TYPE_VIRTUAL = 5  # RFC 2865 section 5.41
SERVICE_TYPE_FRAMED = 2  # RFC 2865 section 5.6
MSK_SIZE = 64


def station_id(host: str, port: int, *, with_port: bool = True) -> str:
    """Called-/Calling-Station-Id as strongSwan prints a host with ``%#H``: ``addr[port]``
    (``station_id_with_port = no``: the address alone)."""
    return f"{host}[{port}]" if with_port else host


def nas_attributes(*, local: tuple[str, int], remote: tuple[str, int], unique_id: int, conn_name: str,
                   nas_identifier: str | None, session_id: str | None = None,
                   station_id_with_port: bool = True) -> list[tuple[int, bytes]]:
    """The attributes strongSwan puts in every Access-Request about the NAS and the
    session (eap_radius.c ``eap_radius_build_attributes``, radius_client.c): NAS-Port-Type
    Virtual, Service-Type Framed, NAS-Port (the IKE SA's unique id), NAS-Port-Id (the conn),
    NAS-IP-Address or NAS-IPv6-Address (our address), Called-Station-Id (ours) and
    Calling-Station-Id (the client's) as ``addr[port]``, Acct-Session-Id, NAS-Identifier."""
    packet = Packet(Code.ACCESS_REQUEST)
    packet.add(Attr.NAS_PORT_TYPE, NAS_PORT_TYPE_VIRTUAL)
    packet.add(Attr.SERVICE_TYPE, SERVICE_TYPE_FRAMED)
    packet.add(Attr.NAS_PORT, unique_id & 0xFFFFFFFF)
    packet.add(Attr.NAS_PORT_ID, conn_name)
    ours = ipaddress.ip_address(local[0])
    packet.add(Attr.NAS_IP_ADDRESS if ours.version == 4 else Attr.NAS_IPV6_ADDRESS, ours)
    packet.add(Attr.CALLED_STATION_ID, station_id(*local, with_port=station_id_with_port))
    packet.add(Attr.CALLING_STATION_ID, station_id(*remote, with_port=station_id_with_port))
    if session_id:
        packet.add(Attr.ACCT_SESSION_ID, session_id)
    if nas_identifier:
        packet.add(Attr.NAS_IDENTIFIER, nas_identifier)
    return packet.attributes


@dataclass(frozen=True)
class RelayOptions:
    """strongSwan's ``charon.plugins.eap-radius`` options of the relay itself:
    ``eap_start`` (begin with EAP-Start instead of our EAP-Identity response),
    ``id_prefix`` (prepended to the identity in User-Name and EAP-Identity) and
    ``station_id_with_port`` (Called-/Calling-Station-Id with ``[port]``)."""

    eap_start: bool = False
    id_prefix: str = ""
    station_id_with_port: bool = True

    @classmethod
    def from_settings(cls, settings) -> "RelayOptions":
        """From :class:`ikegate.radius.settings.RadiusSettings` (defaults for None)."""
        if settings is None:
            return cls()
        return cls(eap_start=bool(settings.eap_start), id_prefix=settings.id_prefix or "",
                   station_id_with_port=bool(settings.station_id_with_port))


@dataclass(frozen=True)
class RadiusAttributes:
    """What the gateway takes from an Access-Accept (eap_radius.c
    ``eap_radius_process_attributes``): Framed-IP-Address / Framed-IPv6-Address (the
    client's virtual IPs, before any local pool), Framed-Pool (a local pool's name),
    DNS servers (MS-Primary/Secondary-DNS-Server, vendor 311 types 28/29, and
    DNS-Server-IPv6-Address), Session-Timeout, Acct-Interim-Interval and the Class
    attributes (echoed in accounting); ``server``: the name of the RADIUS server that
    accepted (for ``ikegate status``)."""

    framed_ips: tuple[str, ...] = ()
    framed_pool: str | None = None
    dns: tuple[str, ...] = ()
    session_timeout: int | None = None
    interim_interval: int | None = None
    classes: tuple[bytes, ...] = ()
    server: str = ""

    @classmethod
    def from_accept(cls, packet: Packet, server: str = "") -> "RadiusAttributes":
        ips = []
        for value in packet.get_all(Attr.FRAMED_IP_ADDRESS):
            if len(value) == 4:
                ips.append(str(ipaddress.IPv4Address(value)))
        for value in packet.get_all(Attr.FRAMED_IPV6_ADDRESS):
            if len(value) == 16:
                ips.append(str(ipaddress.IPv6Address(value)))
        dns = []
        for vtype in (MsAttr.MS_PRIMARY_DNS_SERVER, MsAttr.MS_SECONDARY_DNS_SERVER):
            dns += [str(ipaddress.IPv4Address(v)) for v in packet.vendor_attrs(MICROSOFT, vtype) if len(v) == 4]
        dns += [str(ipaddress.IPv6Address(v)) for v in packet.get_all(Attr.DNS_SERVER_IPV6_ADDRESS) if len(v) == 16]
        pool = packet.get(Attr.FRAMED_POOL)
        return cls(
            framed_ips=tuple(dict.fromkeys(ips)),
            framed_pool=pool.decode("utf-8", "backslashreplace") if pool else None,
            dns=tuple(dict.fromkeys(dns)),
            session_timeout=packet.get_int(Attr.SESSION_TIMEOUT),
            interim_interval=packet.get_int(Attr.ACCT_INTERIM_INTERVAL),
            classes=tuple(packet.get_all(Attr.CLASS)),
            server=server,
        )


@dataclass(frozen=True)
class RelayStep:
    """What to do next.  ``status``: "continue" (send ``eap`` to the client), "radius"
    (send ``request`` to RADIUS and wait), "success" (``eap`` is EAP-Success; ``msk`` and
    ``attributes`` are set) or "failure" (``eap`` is EAP-Failure, or None).  ``reason`` is a
    log line without secrets; ``server_fault`` marks a failure that is not the client's doing
    (no RADIUS server answered, or its answer was unusable): not a failed login."""

    status: str
    eap: bytes | None = None
    request: Packet | None = None
    reason: str = ""
    msk: bytes | None = field(default=None, repr=False)
    attributes: RadiusAttributes | None = None
    server_fault: bool = False


class RadiusEapSession:
    """The server side of one relayed EAP authentication.

    ``nas`` are the attributes of :func:`nas_attributes`; ``random(1)`` gives the
    identifier of our EAP-Identity request."""

    method = "EAP_RADIUS"

    def __init__(self, *, eap_identity_rule: IdentityRule, ike_identity: str, nas: list[tuple[int, bytes]],
                 random, id_prefix: str = "", eap_start: bool = False) -> None:
        self._rule = eap_identity_rule
        self._ike_identity = ike_identity
        self._nas = list(nas)
        self._random = random
        self._id_prefix = id_prefix
        self._eap_start = eap_start
        self._identity = ike_identity
        self._state: bytes | None = None  # the server's State, echoed
        self._identifier = 0  # of the last EAP request the client got
        self._last_response_id = 0  # of the client's last EAP response
        self._type: int | None = None  # the method RADIUS chose
        self._first = True  # no Access-Challenge yet
        self._done = False

    @property
    def identity(self) -> str:
        """The EAP identity: the IKE identity, then the EAP-Identity answer."""
        return self._identity

    @property
    def eap_type(self) -> str:
        """The method the RADIUS server runs, as strongSwan logs it (EAP_MSCHAPV2 ...)."""
        if self._type is None:
            return self.method
        try:
            return f"EAP_{EapType(self._type).name}"
        except ValueError:
            return f"EAP type {self._type}"

    # -- the client's side ------------------------------------------------------------------

    def start(self) -> RelayStep:
        """Our EAP-Identity request (``continue``), or with ``eap_identity`` unset the
        first Access-Request at once (``radius``)."""
        if self._rule is not None:
            first = bytes(self._random(1))
            self._identifier = first[0] if first else 0
            return RelayStep(CONTINUE, eap=build_identity_request(self._identifier).encode())
        return self._first_request()

    def process(self, data: bytes) -> RelayStep:
        """An EAP packet from the client: the Access-Request to send (``radius``), or
        EAP-Failure for a packet strongSwan would refuse itself."""
        if self._done:
            return RelayStep(FAILURE, reason="EAP exchange already finished")
        try:
            response = decode(data)
        except EapDecodeError as exc:
            return self._failure(self._identifier, f"received invalid EAP packet: {exc}")
        if response.code != EapCode.RESPONSE:
            return self._failure(response.identifier, f"received EAP {response.code.name}, expected a Response")
        if response.identifier != self._identifier:
            return self._failure(response.identifier, f"received EAP response with identifier "
                                 f"{response.identifier}, expected {self._identifier}")
        self._last_response_id = response.identifier
        if self._first and self._rule is not None:
            return self._identity_response(response)
        if self._type is not None and response.type not in (self._type, EapType.NAK):
            shown = getattr(response.type, "name", response.type)
            return self._failure(response.identifier, f"received EAP response of type {shown}, expected "
                                 f"{self.eap_type[4:]}")
        return RelayStep(RADIUS, request=self._request(data))

    def _identity_response(self, response: EapPacket) -> RelayStep:
        if response.type != EapType.IDENTITY:
            if response.type == EapType.NAK:
                return self._failure(response.identifier, "received EAP_NAK to EAP-Identity")
            shown = getattr(response.type, "name", response.type)
            return self._failure(response.identifier, f"received EAP response of type {shown}, expected IDENTITY")
        identity, note = identity_of_response(response, self._ike_identity)
        if not identity_matches(identity, self._rule):
            return self._failure(response.identifier, f"{note}, which does not match the configured eap_identity")
        self._identity = identity
        step = self._first_request()
        return RelayStep(RADIUS, request=step.request, reason=note)

    def _first_request(self) -> RelayStep:
        """User-Name and an EAP-Identity response of ours (or EAP-Start) for RADIUS
        (eap_radius.c ``initiate``); the identifier is that of the client's own
        Identity response, 0 without one."""
        packet = self._new_request()
        if self._eap_start:
            packet.add(Attr.EAP_MESSAGE, b"")
        else:
            name = (self._id_prefix + self._identity).encode("utf-8", "surrogateescape")
            identity = EapPacket(EapCode.RESPONSE, self._last_response_id, EapType.IDENTITY, name).encode()
            packet.attributes += eap_attributes(identity)
        return RelayStep(RADIUS, request=packet)

    def _request(self, eap: bytes) -> Packet:
        packet = self._new_request()
        packet.attributes += eap_attributes(eap)
        return packet

    def _new_request(self) -> Packet:
        packet = Packet(Code.ACCESS_REQUEST)
        packet.add(Attr.USER_NAME, (self._id_prefix + self._identity).encode("utf-8", "surrogateescape")[:253])
        packet.attributes += self._nas
        if self._state is not None:
            packet.add(Attr.STATE, self._state)
        return packet

    def _failure(self, identifier: int, reason: str, *, server_fault: bool = False) -> RelayStep:
        self._done = True
        return RelayStep(FAILURE, eap=EapPacket.failure(identifier & 0xFF).encode(), reason=reason,
                         server_fault=server_fault)

    # -- the RADIUS server's side -----------------------------------------------------------

    def answer(self, packet: Packet, *, secret: bytes, request_authenticator: bytes, server: str = "") -> RelayStep:
        """The server's answer to our last Access-Request (already verified by the
        client); ``secret`` and ``request_authenticator`` decrypt the MPPE keys;
        ``server`` names the server that answered."""
        first, self._first = self._first, False
        state = packet.get(Attr.STATE)
        self._state = state  # radius_client.c save_state: absent means forget it
        who = printable(self._id_prefix + self._identity)
        if packet.code == Code.ACCESS_CHALLENGE:
            eap = join_eap(packet)
            try:
                request = decode(eap)
            except EapDecodeError as exc:
                return self._failure(self._last_response_id, f"RADIUS Access-Challenge without a valid "
                                     f"EAP-Message for '{who}': {exc}", server_fault=True)
            if request.code != EapCode.REQUEST:
                return self._failure(self._last_response_id, f"RADIUS Access-Challenge carries EAP "
                                     f"{request.code.name} for '{who}'", server_fault=True)
            self._identifier = request.identifier
            self._type = int(request.type)
            return RelayStep(CONTINUE, eap=eap)
        if packet.code == Code.ACCESS_ACCEPT and not first:
            msk = _msk(packet, secret, request_authenticator)
            if msk is None:
                return self._failure(self._last_response_id, f"RADIUS authentication of '{who}' succeeded "
                                     "but no MSK was received (MS-MPPE-Send/Recv-Key)", server_fault=True)
            self._done = True
            return RelayStep(SUCCESS, eap=EapPacket.success(self._last_response_id).encode(), msk=msk,
                             attributes=RadiusAttributes.from_accept(packet, server),
                             reason=f"RADIUS authentication of '{who}' successful")
        quirk = " (Access-Accept to the first request)" if packet.code == Code.ACCESS_ACCEPT else ""
        return self._failure(self._last_response_id, f"RADIUS authentication of '{who}' failed{quirk}")

    def timeout(self) -> RelayStep:
        """No RADIUS server answered our last Access-Request."""
        return self._failure(self._last_response_id, "no RADIUS server answered", server_fault=True)


def _msk(packet: Packet, secret: bytes, request_authenticator: bytes) -> bytes | None:
    """MS-MPPE-Recv-Key | MS-MPPE-Send-Key, zero-padded to 64 octets; None if either is
    missing or cannot be decrypted."""
    keys = []
    for vtype in (MsAttr.MS_MPPE_RECV_KEY, MsAttr.MS_MPPE_SEND_KEY):
        values = packet.vendor_attrs(MICROSOFT, vtype)
        if not values:
            return None
        try:
            keys.append(decrypt_mppe_key(values[0], secret, request_authenticator))
        except RadiusError:
            return None
    msk = b"".join(keys)
    return msk + bytes(max(0, MSK_SIZE - len(msk)))
