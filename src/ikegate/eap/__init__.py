"""EAP server side: packet codec, EAP-Identity, EAP-MSCHAPv2 and the per-IKE_SA session."""

from ikegate.eap.packet import EapDecodeError, EapPacket, decode
from ikegate.eap.server import EapResult, EapServerSession

__all__ = ["EapDecodeError", "EapPacket", "EapResult", "EapServerSession", "decode"]
