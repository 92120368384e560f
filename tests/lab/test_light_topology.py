"""Light hypervisors' names and addresses (topology.light): a contract the bench, the inventory
and `lab down` rely on; no lab needed."""

from virtdeck.backends.lab import topology as topo
from virtdeck.backends.lab.up import inventory


def test_light_addresses_collide_with_nothing():
    lights = topo.all_lights()
    assert len(lights) == topo.MAX_LIGHT == 16
    assert (lights[0].name, lights[0].address) == ("lh1", "192.168.100.201")
    assert (lights[-1].name, lights[-1].address) == ("lh16", "192.168.100.216")
    taken = {topo.UNDERLAY_GATEWAY, *topo.CENTRAL_MEMBERS, *(h.address for h in topo.all_hypervisors())}
    assert not taken & {h.address for h in lights}
    for h in lights:
        assert h.is_light and h.runs_libvirt and h.has_sshd and not h.is_hypervisor
        assert h.tunnel_ip is None
        for name in (h.netns, h.underlay_veth):
            assert len(name) <= 15, name
        assert topo.by_name(h.name) == h


def test_light_hosts_in_hosts_etc_hosts_and_inventory():
    assert [h.name for h in topo.hosts(1, 2)] == ["central", "hv1", "lh1", "lh2", "outside"]
    assert "192.168.100.202 lh2\n" in topo.etc_hosts(1, 2)
    assert "lh3" not in topo.etc_hosts(1, 2)
    hosts = inventory(0, None, ovn=topo.OVN_STANDALONE, n_light=2)["hosts"]
    assert [(h["name"], h.get("ovn", True)) for h in hosts] == [
        ("central", True), ("lh1", False), ("lh2", False)]
