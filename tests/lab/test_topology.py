"""The lab's names and addresses are a contract other code and tests rely on."""

from virtdeck.backends.lab import topology as topo


def test_addresses_contract():
    assert topo.CENTRAL.address == "192.168.100.10" and topo.UNDERLAY_GATEWAY == "192.168.100.1"
    assert [(h.name, h.address, h.tunnel_ip) for h in topo.hypervisors(4)] == [
        ("hv1", "192.168.100.11", "172.16.0.11"), ("hv2", "192.168.100.12", "172.16.0.12"),
        ("hv3", "192.168.100.13", "172.16.0.13"), ("hv4", "192.168.100.14", "172.16.0.14")]
    assert topo.NB_TCP == "tcp:192.168.100.10:6641" and topo.SB_TCP == "tcp:192.168.100.10:6642"
    assert topo.NB_SOCKET == "/run/ovn/ovnnb_db.sock" and topo.LIBVIRT_SOCKET == "/run/libvirt/libvirt-sock"
    assert topo.OUTSIDE_ADDRESS == "172.16.0.254" and topo.PHYSNET_NAME == "physnet1"
    assert topo.VLAN_HOSTS[100] == ("vd-ext100", "10.100.0.1")
    assert topo.VLAN_HOSTS[200] == ("vd-ext200", "10.200.0.1")
    assert topo.POOL_NAME == "virtdeck"


def test_interface_names_fit_the_kernel_limit():
    for h in [*topo.hosts(topo.MAX_HYPERVISORS)]:
        for name in (h.netns, h.underlay_veth, h.physnet_veth, f"vt-{h.name}"):
            assert len(name) <= 15, name


def test_etc_hosts_names_every_ssh_host():
    text = topo.etc_hosts(3)
    for h in [topo.CENTRAL, *topo.hypervisors(3)]:
        assert f"{h.address} {h.name}\n" in text
    assert "hv4" not in text
