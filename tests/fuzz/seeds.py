"""Seed corpora: real messages, so the fuzzers start from what the wire carries.

The codec's seeds come from one deterministic run of the engine target's connection
(:func:`.engine_target.recorded_connection`): every datagram both ways (the gateway's
IKE_AUTH response arrives in fragments), every encrypted message re-sealed with the
codec target's fixed key (so its opening path is reached), and every plaintext as an
inner chain (``first payload type | chain``).
"""

from __future__ import annotations

from ikegate.wire.codec import Message, decode_message, encode_encrypted, encode_payloads

from .codec_target import cipher
from .engine_target import recorded_connection

__all__ = ["codec_seeds"]


def codec_seeds() -> list[bytes]:
    specs, session = recorded_connection()
    seeds = list(session.history) + [send.data for send in session.net.sent]
    for _, spec in specs:
        first, chain = encode_payloads(spec.payloads)
        seeds.append(bytes((first,)) + chain)
        if spec.encrypted:
            header = decode_message(spec.datagrams[0])
            msg = Message(header.spi_i, header.spi_r, header.exchange, header.message_id, header.initiator,
                          header.response)
            seeds.append(encode_encrypted(msg, spec.payloads, cipher()))
    for received in session.client.received:
        first, chain = encode_payloads(received.payloads)
        seeds.append(bytes((first,)) + chain)
    return seeds
