"""Placement (backends/scheduler.py): pure function, every filter, both weighers, the ledger."""

from __future__ import annotations

import threading

import pytest

from virtdeck.backends.scheduler import HostFacts, PlacementRequest, ReservationLedger, place


def host(name, **kw):
    base = dict(enabled=True, reachable=True, arch="x86_64", cores=4, ram_total_mib=8192,
                ram_free_mib=8192, alloc_vcpus=0, alloc_ram_mib=0, physnets=frozenset({"physnet1"}))
    base.update(kw)
    return HostFacts(name, **base)


REQ = PlacementRequest(vcpus=2, ram_mib=1024)


def test_spread_picks_the_emptiest_and_lists_every_host():
    hosts = [host("hv1", alloc_vcpus=4, alloc_ram_mib=2048), host("hv2")]
    p = place(hosts, REQ)
    assert p.host == "hv2"
    assert [v.host for v in p.verdicts] == ["hv1", "hv2"]
    assert p.verdict("hv2").chosen and not p.verdict("hv2").refused
    loser = p.verdict("hv1")
    assert not loser.chosen and not loser.refused
    assert "headroom" in loser.summary and "hv2" in loser.summary


def test_pack_picks_the_fullest():
    hosts = [host("hv1", alloc_vcpus=4, alloc_ram_mib=2048), host("hv2")]
    assert place(hosts, REQ, weigher="pack").host == "hv1"


def test_ties_broken_by_name():
    assert place([host("hv2"), host("hv1")], REQ).host == "hv1"
    assert place([host("hv2"), host("hv1")], REQ, weigher="pack").host == "hv1"


def test_disabled_and_unreachable_refused_with_reason():
    hosts = [host("hv1", enabled=False), host("hv2", reachable=False, error="ssh: connection refused"),
             host("hv3")]
    p = place(hosts, REQ)
    assert p.host == "hv3"
    assert p.verdict("hv1").refused and "disabled" in p.verdict("hv1").summary
    assert p.verdict("hv2").refused and "connection refused" in p.verdict("hv2").summary


def test_arch_filter():
    p = place([host("hv1", arch="aarch64"), host("hv2")], REQ)
    assert p.host == "hv2"
    assert "arch: host is aarch64, the template needs x86_64" in p.verdict("hv1").reasons


def test_vcpu_filter_uses_cores_times_ratio():
    # 4 cores × 1.0 = 4; 3 allocated + 2 > 4
    p = place([host("hv1", alloc_vcpus=3)], REQ, cpu_ratio=1.0)
    assert p.host is None
    assert any(r.startswith("vcpus: 3 allocated + 2 asked > 4 (4 cores × 1)") for r in p.verdict("hv1").reasons)
    # same host fits at ratio 4
    assert place([host("hv1", alloc_vcpus=3)], REQ, cpu_ratio=4.0).host == "hv1"
    # exactly full fits
    assert place([host("hv1", alloc_vcpus=2)], REQ, cpu_ratio=1.0).host == "hv1"


def test_ram_filters_allocation_and_free():
    p = place([host("hv1", alloc_ram_mib=7600)], REQ)
    assert p.host is None and "ram: 7600 MiB allocated + 1024 asked > 8192 MiB" in p.verdict("hv1").summary
    p = place([host("hv1", ram_free_mib=500)], REQ)
    assert p.host is None and "only 500 MiB free now" in p.verdict("hv1").summary
    # overcommit ratio lets allocation exceed total, but real free memory still counts
    assert place([host("hv1", alloc_ram_mib=7600)], REQ, ram_ratio=1.5).host == "hv1"


def test_physnet_filter():
    req = PlacementRequest(vcpus=1, ram_mib=512, physnets=frozenset({"physnet2"}))
    p = place([host("hv1"), host("hv2", physnets=frozenset({"physnet1", "physnet2"}))], req)
    assert p.host == "hv2"
    assert "physnet: no bridge mapping for physnet2 (host maps: physnet1)" in p.verdict("hv1").reasons
    # overlay-only VMs need no mapping at all
    assert place([host("hv1", physnets=frozenset())], REQ).host == "hv1"


def test_unreadable_bridge_mappings_are_not_reported_as_none():
    # a non-root operator without the OVS socket: the refusal says why, not "host maps: none"
    why = "the operator may not read the OVS database (/run/openvswitch/db.sock: permission denied)"
    req = PlacementRequest(vcpus=1, ram_mib=512, physnets=frozenset({"physnet1"}))
    p = place([host("hv1", physnets=frozenset(), physnets_error=why)], req)
    assert p.host is None
    assert f"physnet: cannot tell whether it maps physnet1: {why}" in p.verdict("hv1").reasons
    # an overlay VM does not care
    assert place([host("hv1", physnets=frozenset(), physnets_error=why)], REQ).host == "hv1"


def test_anti_affinity():
    req = PlacementRequest(vcpus=1, ram_mib=512, anti_affinity_group="web",
                           group_hosts=frozenset({"hv2"}))
    p = place([host("hv1", alloc_vcpus=8), host("hv2")], req)
    assert p.host == "hv1"
    assert "anti-affinity: already holds a member of group 'web'" in p.verdict("hv2").reasons
    # every host taken: nothing fits
    req2 = PlacementRequest(vcpus=1, ram_mib=512, anti_affinity_group="web",
                            group_hosts=frozenset({"hv1", "hv2"}))
    assert place([host("hv1"), host("hv2")], req2).host is None


def test_pin():
    req = PlacementRequest(vcpus=1, ram_mib=512, pinned_host="hv1")
    p = place([host("hv1", alloc_vcpus=8), host("hv2")], req)
    assert p.host == "hv1"
    assert p.verdict("hv2").reasons == ("pinned: the VM is pinned to hv1",)
    # a pinned host that fails a filter is refused, and nobody else is chosen
    req = PlacementRequest(vcpus=1, ram_mib=512, pinned_host="hv1")
    p = place([host("hv1", enabled=False), host("hv2")], req)
    assert p.host is None and p.verdict("hv1").refused


def test_every_failing_reason_listed():
    p = place([host("hv1", enabled=False, arch="aarch64", alloc_vcpus=16, ram_free_mib=0)], REQ)
    reasons = p.verdict("hv1").reasons
    assert [r.split(":")[0] for r in reasons] == ["enabled", "arch", "vcpus", "ram"]


def test_explain_and_rows():
    p = place([host("hv1", enabled=False), host("hv2")], REQ)
    text = p.explain()
    assert "chosen: hv2" in text and "hv1: refused" in text
    rows = p.as_rows()
    assert rows[0]["verdict"] == "refused" and rows[1]["verdict"] == "chosen"
    assert rows[1]["vcpus"] == "0/16" and rows[1]["ram_mib"] == "0/8192"
    assert place([], REQ).explain() == "no hypervisors in the inventory"


def test_bad_arguments():
    with pytest.raises(ValueError):
        place([host("hv1")], REQ, weigher="random")
    with pytest.raises(ValueError):
        place([host("hv1")], PlacementRequest(vcpus=0, ram_mib=512))


def test_claims_count_as_allocations():
    p = place([host("hv1"), host("hv2")], REQ, claims={"hv2": (8, 4096)})
    assert p.host == "hv1"
    assert p.verdict("hv2").vcpus_used == 8


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_ledger_keeps_concurrent_creates_from_oversubscribing():
    # Each host has room for exactly one 2-vCPU VM (2 cores × 1.0).
    hosts = [host("hv1", cores=2), host("hv2", cores=2)]
    ledger = ReservationLedger()
    results = []
    barrier = threading.Barrier(3)

    def create():
        barrier.wait()
        p, claim = ledger.place_and_claim(hosts, REQ, cpu_ratio=1.0, facts_time=0.0)
        results.append((p.host, claim))

    threads = [threading.Thread(target=create) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    chosen = sorted(h for h, _ in results if h)
    assert chosen == ["hv1", "hv2"]  # spread over both, the third refused
    assert sum(1 for h, c in results if h is None and c is None) == 1


def test_released_claim_still_counts_for_stale_facts():
    clock = FakeClock()
    ledger = ReservationLedger(clock=clock)
    hosts = [host("hv1", cores=2)]
    facts_time = clock()  # caller B reads facts (without A's domain) at t=100
    clock.t = 101
    _, claim = ledger.place_and_claim(hosts, REQ, cpu_ratio=1.0, facts_time=clock())
    assert claim is not None and claim.host == "hv1"
    clock.t = 102
    ledger.release(claim)  # A defined its domain
    # B's facts predate the release: A's domain may be missing there, so the claim still counts
    p, c2 = ledger.place_and_claim(hosts, REQ, cpu_ratio=1.0, facts_time=facts_time)
    assert p.host is None and c2 is None
    # facts read after the release include A's domain; the claim no longer counts
    assert ledger.held(facts_time=103) == {}
    assert ledger.held(facts_time=facts_time) == {"hv1": (2, 1024)}


def test_released_claims_are_forgotten_and_drop():
    clock = FakeClock()
    ledger = ReservationLedger(keep_seconds=10, clock=clock)
    _, claim = ledger.place_and_claim([host("hv1")], REQ)
    assert ledger.held() == {"hv1": (2, 1024)}
    ledger.release(claim)
    ledger.release(claim)  # idempotent
    assert ledger.held() == {}
    assert ledger.held(facts_time=0) == {"hv1": (2, 1024)}
    clock.t += 11
    assert ledger.held(facts_time=0) == {}
    _, c2 = ledger.place_and_claim([host("hv1")], REQ)
    ledger.drop(c2)
    assert ledger.held(facts_time=0) == {}
    ledger.release(None)
    ledger.drop(None)


def test_caller_refusals_listed():
    p = place([host("hv1", refusals=("template: volume debian12.qcow2 is not in pool virtdeck",)),
               host("hv2")], REQ)
    assert p.host == "hv2"
    assert p.verdict("hv1").reasons == ("template: volume debian12.qcow2 is not in pool virtdeck",)


def test_disabled_host_without_facts_shows_only_why():
    p = place([HostFacts("hv3", enabled=False), host("hv1")], REQ)
    v = p.verdict("hv3")
    assert v.refused and v.reasons == ("enabled: host is disabled in the inventory",)
    assert v.vcpus_capacity is None
