"""End to end: a Debian 12 guest from the lab template, seeded by backends/seed.py, booted under
TCG on a lab hypervisor; real cloud-init must apply the seed's hostname and run its runcmd."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_template_guest_runs_cloud_init_from_the_seed(lab):
    import libvirt
    from virtdeck.backends.lab.hosts import libvirt_uri
    from virtdeck.backends.lab.smoke import boot_probe
    host = lab.hypervisors[-1]
    r = boot_probe(host, memory_mib=512, vcpus=1, timeout=480)
    assert r.kernel_s is not None, r.serial_tail
    assert r.marker_seen, r.serial_tail      # the seed's runcmd ran …
    assert r.hostname_seen, r.serial_tail    # … on a guest named by the seed's hostname
    assert r.done_s is not None, r.serial_tail  # cloud-init reached final_message
    # Cleaned up: no domain, no volume of the probe left.
    conn = libvirt.open(libvirt_uri(host))
    try:
        assert r.name not in [d.name() for d in conn.listAllDomains(0)]
        vols = conn.storagePoolLookupByName("virtdeck").listVolumes()
        assert not [v for v in vols if v.startswith(r.name)]
    finally:
        conn.close()
