"""The netlink XFRM codec (:mod:`ikegate.dataplane.xfrm.messages`), on the host.

* Layouts: the bytes our encoder produces for each structure are compared with the bytes
  the C compiler lays out from the system's ``<linux/xfrm.h>`` for the same field values
  (an independent reading of the header, padding included); skipped without ``cc``.
* Round trips: every message and attribute type we use, encode -> decode -> equal,
  several messages in one datagram, malformed input raising :class:`XfrmDecodeError`.

The cross-check against the kernel itself (``ip xfrm`` in a user-mode Linux guest) is in
``test_xfrm_kernel.py``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from ikegate.dataplane.xfrm import messages as xm
from ikegate.dataplane.xfrm.messages import (AlgoAead, AlgoAuth, AlgoCrypt, EncapTmpl, LastUsed, Message, RawAttr,
                                              ReplayEsn, ReplayState, Selector, Templates, UserPolicyId,
                                              UserPolicyInfo, UserSaId, UserSaInfo, UserTmpl, XfrmDecodeError)

V4, V6 = socket.AF_INET, socket.AF_INET6

# -- the same values in C and in Python ---------------------------------------------------------

_C_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/xfrm.h>

static void dump(const char *name, const void *p, size_t n) {
    const unsigned char *b = p;
    printf("%s ", name);
    for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
    printf("\n");
}

static void sel(struct xfrm_selector *s) {
    inet_pton(AF_INET6, "2001:db8::1", &s->daddr);
    inet_pton(AF_INET6, "2001:db8:1::", &s->saddr);
    s->dport = htons(443); s->dport_mask = htons(0xffff);
    s->sport = htons(1234); s->sport_mask = htons(0xfff0);
    s->family = AF_INET6; s->prefixlen_d = 128; s->prefixlen_s = 48; s->proto = 6;
    s->ifindex = 7; s->user = 1000;
}

int main(void) {
    struct xfrm_usersa_info sa; memset(&sa, 0, sizeof sa);
    sel(&sa.sel);
    inet_pton(AF_INET, "192.0.2.1", &sa.id.daddr); sa.id.spi = htonl(0xc0ffee01); sa.id.proto = 50;
    inet_pton(AF_INET, "198.51.100.2", &sa.saddr);
    sa.lft.soft_byte_limit = 1; sa.lft.hard_byte_limit = 2; sa.lft.soft_packet_limit = 3;
    sa.lft.hard_packet_limit = 4; sa.lft.soft_add_expires_seconds = 5; sa.lft.hard_add_expires_seconds = 6;
    sa.lft.soft_use_expires_seconds = 7; sa.lft.hard_use_expires_seconds = 8;
    sa.curlft.bytes = 9; sa.curlft.packets = 10; sa.curlft.add_time = 11; sa.curlft.use_time = 12;
    sa.stats.replay_window = 13; sa.stats.replay = 14; sa.stats.integrity_failed = 15;
    sa.seq = 16; sa.reqid = 0x49470001; sa.family = AF_INET; sa.mode = 1; sa.replay_window = 32;
    sa.flags = 32 | 128;
    dump("usersa_info", &sa, sizeof sa);

    struct xfrm_usersa_id id; memset(&id, 0, sizeof id);
    inet_pton(AF_INET6, "2001:db8::2", &id.daddr); id.spi = htonl(0x01020304); id.family = AF_INET6;
    id.proto = 50;
    dump("usersa_id", &id, sizeof id);

    struct xfrm_userpolicy_info pol; memset(&pol, 0, sizeof pol);
    sel(&pol.sel);
    pol.lft.soft_byte_limit = 21; pol.lft.hard_use_expires_seconds = 28;
    pol.curlft.bytes = 29; pol.curlft.use_time = 32;
    pol.priority = 199000; pol.index = 0x1234; pol.dir = 2; pol.action = 1; pol.flags = 2; pol.share = 3;
    dump("userpolicy_info", &pol, sizeof pol);

    struct xfrm_userpolicy_id pid; memset(&pid, 0, sizeof pid);
    sel(&pid.sel); pid.index = 77; pid.dir = 1;
    dump("userpolicy_id", &pid, sizeof pid);

    struct xfrm_user_tmpl t; memset(&t, 0, sizeof t);
    inet_pton(AF_INET, "192.0.2.1", &t.id.daddr); t.id.spi = htonl(5); t.id.proto = 50;
    t.family = AF_INET; inet_pton(AF_INET, "198.51.100.2", &t.saddr); t.reqid = 0x49470002;
    t.mode = 1; t.share = 2; t.optional = 1; t.aalgos = 0xfffffffe; t.ealgos = 0xfffffffd;
    t.calgos = 0xfffffffc;
    dump("user_tmpl", &t, sizeof t);

    struct xfrm_encap_tmpl e; memset(&e, 0, sizeof e);
    e.encap_type = 2; e.encap_sport = htons(4500); e.encap_dport = htons(61000);
    inet_pton(AF_INET, "203.0.113.9", &e.encap_oa);
    dump("encap_tmpl", &e, sizeof e);

    struct { struct xfrm_algo_aead a; unsigned char key[20]; } aead; memset(&aead, 0, sizeof aead);
    strcpy(aead.a.alg_name, "rfc4106(gcm(aes))"); aead.a.alg_key_len = 160; aead.a.alg_icv_len = 128;
    for (int i = 0; i < 20; i++) aead.key[i] = i;
    dump("algo_aead", &aead, sizeof aead.a + 20);

    struct { struct xfrm_replay_state_esn r; __u32 bmp[4]; } esn; memset(&esn, 0, sizeof esn);
    esn.r.bmp_len = 4; esn.r.oseq = 1; esn.r.seq = 2; esn.r.oseq_hi = 3; esn.r.seq_hi = 4;
    esn.r.replay_window = 128; esn.bmp[0] = 0xffffffff; esn.bmp[3] = 5;
    dump("replay_esn", &esn, sizeof esn.r + 16);
    return 0;
}
"""


def _selector() -> Selector:
    return Selector(V6, "2001:db8::1", "2001:db8:1::", 128, 48, 6, 443, 0xFFFF, 1234, 0xFFF0, 7, 1000)


def _python_structs() -> dict[str, bytes]:
    sa = UserSaInfo(daddr="192.0.2.1", saddr="198.51.100.2", spi=0xC0FFEE01, family=V4, proto=50,
                    reqid=0x49470001, mode=1, replay_window=32, flags=32 | 128, seq=16, sel=_selector(),
                    lft=xm.LifetimeCfg(1, 2, 3, 4, 5, 6, 7, 8), curlft=xm.LifetimeCur(9, 10, 11, 12),
                    stats=xm.Stats(13, 14, 15))
    policy = UserPolicyInfo(_selector(), dir=2, action=1, priority=199000, index=0x1234, flags=2, share=3,
                            lft=xm.LifetimeCfg(21, 0, 0, 0, 0, 0, 0, 28), curlft=xm.LifetimeCur(29, 0, 0, 32))
    return {
        "usersa_info": sa.pack(),
        "usersa_id": UserSaId("2001:db8::2", 0x01020304, V6, 50).pack(),
        "userpolicy_info": policy.pack(),
        "userpolicy_id": UserPolicyId(_selector(), dir=1, index=77).pack(),
        "user_tmpl": UserTmpl("192.0.2.1", "198.51.100.2", V4, 0x49470002, 50, 5, 1, 2, 1, 0xFFFFFFFE,
                              0xFFFFFFFD, 0xFFFFFFFC).pack(),
        "encap_tmpl": EncapTmpl(4500, 61000, 2, "203.0.113.9").pack(),
        "algo_aead": AlgoAead("rfc4106(gcm(aes))", bytes(range(20)), 128).pack(),
        "replay_esn": ReplayEsn(128, 1, 2, 3, 4, (0xFFFFFFFF, 0, 0, 5)).pack(),
    }


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to read <linux/xfrm.h>")
def test_layouts_match_the_kernel_header(tmp_path):
    source = tmp_path / "layout.c"
    source.write_text(_C_PROGRAM)
    binary = tmp_path / "layout"
    subprocess.run(["cc", "-O0", "-o", str(binary), str(source)], check=True, capture_output=True, timeout=60)
    c_bytes = {}
    for line in subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout.splitlines():
        name, hexdata = line.split()
        c_bytes[name] = bytes.fromhex(hexdata)
    ours = _python_structs()
    assert set(c_bytes) == set(ours)
    for name, data in ours.items():
        assert data == c_bytes[name], name
    # and the sizes the module documents
    assert [len(c_bytes[n]) for n in ("usersa_info", "usersa_id", "userpolicy_info", "userpolicy_id",
                                      "user_tmpl", "encap_tmpl")] == [224, 24, 168, 64, 64, 24]


def test_structures_decode_what_they_encode():
    sa = _python_structs()["usersa_info"]
    decoded = UserSaInfo.unpack(sa)
    assert (decoded.daddr, decoded.saddr, decoded.spi, decoded.reqid, decoded.flags) == (
        "192.0.2.1", "198.51.100.2", 0xC0FFEE01, 0x49470001, 160)
    assert decoded.sel == _selector()
    assert decoded.curlft == xm.LifetimeCur(9, 10, 11, 12) and decoded.stats == xm.Stats(13, 14, 15)
    assert decoded.pack() == sa
    for name, cls in (("userpolicy_info", UserPolicyInfo), ("userpolicy_id", UserPolicyId),
                      ("usersa_id", UserSaId), ("user_tmpl", UserTmpl), ("encap_tmpl", EncapTmpl)):
        data = _python_structs()[name]
        assert cls.unpack(data).pack() == data, name


# -- whole messages ---------------------------------------------------------------------------

def _newsa() -> Message:
    info = UserSaInfo(daddr="2001:db8::1", saddr="2001:db8::2", spi=0xDEADBEEF, family=V6, reqid=0x49470003,
                      flags=xm.XFRM_STATE_AF_UNSPEC | xm.XFRM_STATE_ESN)
    attrs = [AlgoCrypt("cbc(aes)", bytes(range(32))), AlgoAuth("hmac(sha256)", bytes(32), 128),
             EncapTmpl(4500, 4501), ReplayEsn(64, oseq=7, bmp=(1, 2)), LastUsed(1_700_000_000),
             ReplayState(1, 2, 3), RawAttr(31, b"\x05\x00\x00\x00")]
    return Message(xm.XFRM_MSG_NEWSA, info, attrs, flags=xm.NLM_F_REQUEST | xm.NLM_F_ACK, seq=42, pid=9)


def test_message_round_trips():
    messages = [
        _newsa(),
        Message(xm.XFRM_MSG_UPDSA, UserSaInfo("10.0.0.1", "10.0.0.2", 1, V4), [AlgoAead("rfc7539esp(chacha20,poly1305)", bytes(36), 128)]),
        Message(xm.XFRM_MSG_DELSA, UserSaId("10.0.0.1", 0x1234, V4)),
        Message(xm.XFRM_MSG_GETSA, UserSaId("2001:db8::9", 0x4321, V6)),
        Message(xm.XFRM_MSG_NEWPOLICY, UserPolicyInfo(_selector(), xm.XFRM_POLICY_FWD, priority=5),
                [Templates([UserTmpl("10.0.0.1", "10.0.0.2", V4, 0x49470001),
                            UserTmpl("2001:db8::1", "2001:db8::2", V6, 0x49470002)])]),
        Message(xm.XFRM_MSG_UPDPOLICY, UserPolicyInfo(Selector(V4, "0.0.0.0", "10.1.0.0", 0, 16), xm.XFRM_POLICY_OUT)),
        Message(xm.XFRM_MSG_DELPOLICY, UserPolicyId(_selector(), xm.XFRM_POLICY_IN)),
        Message(xm.XFRM_MSG_GETPOLICY, None, flags=xm.NLM_F_REQUEST | xm.NLM_F_DUMP),
        Message(xm.XFRM_MSG_GETSA, None, flags=xm.NLM_F_REQUEST | xm.NLM_F_DUMP),
        Message(xm.NLMSG_DONE, None, flags=xm.NLM_F_MULTI, error=0),
        Message(xm.XFRM_MSG_MAPPING, xm.UserMapping(UserSaId("10.0.0.1", 0xC1000001, V4), 0x49470001,
                                                    "192.0.2.9", "192.0.2.10", 4500, 61000)),
    ]
    for message in messages:
        data = xm.encode(message)
        assert len(data) % 4 == 0
        assert xm.decode(data) == message, message.type
    # a datagram holding several messages (what a dump answer looks like)
    datagram = b"".join(xm.encode(m) for m in messages)
    assert list(xm.decode_all(datagram)) == messages


def test_ack_and_error():
    request = xm.encode(Message(xm.XFRM_MSG_DELSA, UserSaId("10.0.0.1", 1, V4), seq=5))
    error = xm.decode(xm.encode(Message(xm.NLMSG_ERROR, request[:16], error=-3, seq=5)))
    assert (error.type, error.error, error.seq, error.body) == (xm.NLMSG_ERROR, -3, 5, request[:16])
    ack = xm.decode(xm.encode(Message(xm.NLMSG_ERROR, None, error=0, seq=6)))
    assert ack.error == 0


def test_attribute_details():
    message = xm.decode(xm.encode(_newsa()))
    esn = xm.find(message.attrs, ReplayEsn)
    assert (esn.replay_window, esn.bmp_len, esn.oseq, esn.bmp) == (64, 2, 7, (1, 2))
    auth = xm.find(message.attrs, AlgoAuth)
    assert (auth.name, auth.trunc_len, len(auth.key)) == ("hmac(sha256)", 128, 32)
    assert xm.find(message.attrs, EncapTmpl) == EncapTmpl(4500, 4501, xm.UDP_ENCAP_ESPINUDP, "")
    assert xm.find(message.attrs, LastUsed).time == 1_700_000_000
    assert xm.find(message.attrs, Templates) is None
    assert "key=" not in repr(auth) and "key=" not in repr(xm.find(message.attrs, AlgoCrypt))  # no keys in logs


@pytest.mark.parametrize("cut", [3, 15, 20, 100, 250, 300])
def test_truncated_messages_raise(cut):
    data = xm.encode(_newsa())
    # a header that claims more than there is, or a body/attribute cut short
    truncated = data[:cut]
    if len(truncated) >= 16:  # the header made consistent: the body or an attribute is short
        truncated = len(truncated).to_bytes(4, "little") + truncated[4:]
    with pytest.raises(XfrmDecodeError):
        xm.decode(truncated)


def test_bad_attribute_length_raises():
    data = bytearray(xm.encode(Message(xm.XFRM_MSG_NEWSA, UserSaInfo("10.0.0.1", "10.0.0.2", 1, V4),
                                       [LastUsed(5)])))
    data[16 + 224] = 200  # the attribute's nla_len, beyond the message
    with pytest.raises(XfrmDecodeError):
        xm.decode(bytes(data))


# in the form inet_ntop gives them (Python's and glibc's spellings of e.g. ::ffff:0:0 differ)
_addresses4 = st.ip_addresses(v=4).map(lambda a: socket.inet_ntop(V4, a.packed))
_addresses6 = st.ip_addresses(v=6).map(lambda a: socket.inet_ntop(V6, a.packed))


@settings(max_examples=60, deadline=None)
@given(family=st.sampled_from([V4, V6]), data=st.data(), spi=st.integers(0, 2**32 - 1),
       reqid=st.integers(0, 2**32 - 1), ports=st.tuples(*[st.integers(0, 65535)] * 4),
       plens=st.tuples(st.integers(0, 128), st.integers(0, 128)))
def test_selector_and_sa_round_trip_property(family, data, spi, reqid, ports, plens):
    addresses = _addresses4 if family == V4 else _addresses6
    sel = Selector(family, data.draw(addresses), data.draw(addresses), plens[0], plens[1], 17, *ports)
    info = UserSaInfo(data.draw(addresses), data.draw(addresses), spi, family, reqid=reqid, sel=sel)
    message = Message(xm.XFRM_MSG_NEWSA, info, [Templates([UserTmpl(info.daddr, info.saddr, family, reqid)])])
    assert xm.decode(xm.encode(message)) == message
