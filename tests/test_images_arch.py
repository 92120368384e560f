"""Arch-aware placement (backends/scheduler.py ``arch_fit``): a host runs a template's arch
natively, emulated (TCG, refused unless the host or the request allows it) or not at all, and
the explanation says which. The guest arches come from libvirt's capabilities
(backends/host_facts.guest_arches), read here from the lab's real libvirtd too."""

from __future__ import annotations

import pytest

from virtdeck.backends.scheduler import HostFacts, PlacementRequest, place

X86_ONLY = (("x86_64", ("qemu", "kvm")), ("i686", ("qemu", "kvm")))
WITH_ARM = X86_ONLY + (("aarch64", ("qemu",)),)


def _host(name, arches, allow=False):
    return HostFacts(name, arch="x86_64", cores=8, ram_total_mib=16384, ram_free_mib=16000,
                     guest_arches=arches, allow_emulation=allow)


def test_aarch64_refused_where_libvirt_cannot_run_it_and_where_emulation_is_not_allowed():
    p = place([_host("hv1", X86_ONLY), _host("hv2", WITH_ARM)], PlacementRequest(1, 512, arch="aarch64"))
    assert p.host is None
    why = {v.host: v.summary for v in p.verdicts}
    assert "cannot run aarch64 guests" in why["hv1"] and "qemu-system" in why["hv1"]
    assert "only emulated" in why["hv2"] and "--allow-emulation" in why["hv2"]


def test_aarch64_accepted_where_the_host_or_the_request_allows_emulation():
    p = place([_host("hv1", X86_ONLY), _host("hv2", WITH_ARM, allow=True)], PlacementRequest(1, 512, arch="aarch64"))
    assert p.host == "hv2"
    chosen = next(v for v in p.verdicts if v.chosen)
    assert "aarch64 emulated on x86_64 (TCG), allowed by the host" in chosen.summary
    p = place([_host("hv2", WITH_ARM)], PlacementRequest(1, 512, arch="aarch64", allow_emulation=True))
    assert p.host == "hv2" and "allowed by the request" in p.verdicts[0].summary


def test_native_arch_passes_without_a_note_and_unknown_arches_fall_back_to_equality():
    p = place([_host("hv1", WITH_ARM)], PlacementRequest(1, 512, arch="x86_64"))
    assert p.host == "hv1" and "emulated" not in p.verdicts[0].summary
    legacy = HostFacts("old", arch="x86_64", cores=8, ram_total_mib=16384, ram_free_mib=16000)
    p = place([legacy], PlacementRequest(1, 512, arch="aarch64"))
    assert p.host is None and "host is x86_64, the template needs aarch64" in p.verdicts[0].summary


@pytest.mark.lab
def test_guest_arches_from_the_lab_capabilities(lab_session, lab_inventory):
    from virtdeck.backends import host_facts
    h = next(h.name for h in lab_inventory.hypervisors if h.enabled)
    arches = dict(host_facts.guest_arches(lab_session.libvirt(h), h))
    assert "qemu" in arches["x86_64"]
    # qemu-system-arm is installed by .ci/setup: libvirt offers aarch64 under TCG only
    assert arches.get("aarch64") == ("qemu",), arches


from provision_helpers import lab_inventory, lab_session  # noqa: E402,F401


def test_vms_panel_rows_carry_the_guest_arch():
    from console_fixtures import sample_cloud
    from virtdeck.screens.views import VM_COLUMNS, vm_rows
    rows = vm_rows(sample_cloud())
    assert VM_COLUMNS[-1].key == "arch" and VM_COLUMNS[-1].hide_below > 0  # wide tables only
    assert all(len(r.cells) == len(VM_COLUMNS) and r.cells[-1] == "x86_64" for r in rows)
