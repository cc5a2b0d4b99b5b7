"""The test cluster's pod addresses (tests/cluster/containers.next_host), offline: handed out as the CNI host-local
IPAM does on the lab (recordings/50-pod-ip-after-delete.json): the next free one after the last given, so a
deleted pod's address is not the next pod's."""

from __future__ import annotations

import pytest

from tests.cluster.containers import HelperError, next_host


def test_a_freed_address_is_not_given_again_at_once():
    used = {2, 3}
    assert next_host(used, last=3) == 4
    used.discard(3)  # the pod at .3 deleted: the next pod gets .4, not .3
    assert next_host(used, last=3) == 4


def test_the_addresses_wrap_around_to_the_first_free_one():
    assert next_host({254, 2}, last=254) == 3
    assert next_host(set(), last=1) == 2


def test_a_full_network_is_an_error():
    with pytest.raises(HelperError):
        next_host(set(range(2, 255)), last=7)
