"""`smartcity up` sizes the services' verification pools for a host every process shares."""

from __future__ import annotations

from services.stack.up import POOLS_FROM_CORES, VERIFY_POOLS, colocated_pools


def test_on_two_cores_the_pools_are_off_unless_the_environment_sizes_them() -> None:
    assert colocated_pools(2, {}) == {"REWARDS_VERIFY_WORKERS": "0", "LEDGER_VERIFY_WORKERS": "0"}
    assert colocated_pools(1, {}) == dict.fromkeys(VERIFY_POOLS, "0")
    assert colocated_pools(None, {}) == dict.fromkeys(VERIFY_POOLS, "0")  # cores unknown: assume few
    # An operator's own size stands; the other pool is still turned off.
    assert colocated_pools(2, {"LEDGER_VERIFY_WORKERS": "2"}) == {"REWARDS_VERIFY_WORKERS": "0"}
    assert colocated_pools(2, dict.fromkeys(VERIFY_POOLS, "1")) == {}


def test_with_cores_to_spare_the_services_defaults_stand() -> None:
    assert colocated_pools(POOLS_FROM_CORES, {}) == {}
    assert colocated_pools(16, {}) == {}
