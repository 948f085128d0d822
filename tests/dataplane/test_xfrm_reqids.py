"""The kernel reqid table of the XFRM data plane (:mod:`ikegate.dataplane.xfrm.reqids`):
engine reqids map into ikegate's tag range without truncation collisions.  That the
kernel then shows distinct reqids for two live SAs 65536 reqids apart is checked in the
guest by tests/dataplane/test_xfrm_kernel.py (``test_reqids_65536_apart_in_the_kernel``)."""

from __future__ import annotations

import pytest

from ikegate.dataplane.xfrm.kernel import REQID_TAG, is_tagged, kernel_reqid
from ikegate.dataplane.xfrm.reqids import REQID_SLOTS, ReqidsExhausted, ReqidTable


def test_usual_case_keeps_the_documented_tag_scheme():
    table = ReqidTable(REQID_TAG)
    assert table.acquire(1, owner=0xC1) == kernel_reqid(1) == 0x49470001 == 1229389825
    assert table.acquire(0x12345, owner=0xC2) == kernel_reqid(0x12345) == REQID_TAG | 0x2345
    assert table.get(1) == 0x49470001 and table.get(7) is None and len(table) == 2


def test_two_live_reqids_65536_apart_get_different_kernel_reqids():
    table = ReqidTable(REQID_TAG)
    first = table.acquire(1, owner=0xC1)
    second = table.acquire(1 + REQID_SLOTS, owner=0xC2)
    third = table.acquire(1 + 2 * REQID_SLOTS, owner=0xC3)
    assert len({first, second, third}) == 3
    assert all(is_tagged(r) for r in (first, second, third))
    assert table.get(1) == first and table.get(1 + REQID_SLOTS) == second


def test_shared_by_the_sas_of_one_reqid_and_freed_with_the_last():
    table = ReqidTable(REQID_TAG)
    old = table.acquire(5, owner=0xA)  # a CHILD SA ...
    new = table.acquire(5, owner=0xB)  # ... and its rekeyed successor: same reqid, same kernel reqid
    assert old == new and len(table) == 1
    table.release(0xA)
    assert table.get(5) == old  # still used by 0xB
    table.release(0xB)
    assert table.get(5) is None and len(table) == 0
    table.release(0xB)  # twice: nothing happens
    # the freed slot is the preferred one of reqid 5 + 65536 now
    assert table.acquire(5 + REQID_SLOTS, owner=0xC) == old


def test_an_owner_moving_to_another_reqid_releases_the_first():
    table = ReqidTable(REQID_TAG)
    table.acquire(3, owner=0xA)
    table.acquire(4, owner=0xA)
    assert table.get(3) is None and table.get(4) == kernel_reqid(4) and len(table) == 1


def test_all_65536_in_use_is_refused_and_a_freed_one_is_reused():
    table = ReqidTable(REQID_TAG)
    given = {table.acquire(reqid, owner=reqid) for reqid in range(1, REQID_SLOTS + 1)}
    assert len(given) == REQID_SLOTS == len(table)
    assert all(is_tagged(r) for r in given)
    assert min(given) == REQID_TAG and max(given) == REQID_TAG | 0xFFFF
    with pytest.raises(ReqidsExhausted, match="all 65536 kernel reqids of ikegate .* are in use"):
        table.acquire(REQID_SLOTS + 7, owner=0xFFFFFFFF)
    assert table.get(REQID_SLOTS + 7) is None and len(table) == REQID_SLOTS  # nothing half-taken
    table.acquire(REQID_SLOTS, owner=REQID_SLOTS)  # a reqid already mapped still works for another SA
    table.release(300)
    table.release(REQID_SLOTS + 1)  # not an owner: ignored
    assert table.acquire(REQID_SLOTS + 9, owner=0xFFFFFFFF) == kernel_reqid(300)  # the one freed
