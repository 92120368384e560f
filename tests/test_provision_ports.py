"""VM ports in a real OVN NB ovsdb-server (backends/ovn_ports.py)."""

from __future__ import annotations

import uuid

import pytest

from backends import ovn_ports
from backends.session import open_nb
from console.errors import HostError, ValidationError


def make_network(nb, name="net1", tenant="demo", cidr="10.0.0.0/24", dynamic=False, physnet=None):
    """A switch + DHCP_Options as the networks engineer lays them out (until their code lands)."""
    switch = f"vd-{tenant}-{name}"
    other = {"subnet": cidr} if dynamic else {}
    with nb.transaction(check_error=True) as txn:
        txn.add(nb.ls_add(switch, may_exist=True, other_config=other,
                          external_ids={"virtdeck:name": name, "virtdeck:tenant": tenant}))
        txn.add(nb.dhcp_options_add(cidr, **{"virtdeck:network": switch, "virtdeck:tenant": tenant}))
    row = [r for r in nb.dhcp_options_list().execute(check_error=True) if r.cidr == cidr][-1]
    nb.dhcp_options_set_options(row.uuid, lease_time="3600", router=str(cidr.rsplit(".", 1)[0]) + ".1",
                                server_id=str(cidr.rsplit(".", 1)[0]) + ".1",
                                server_mac="02:00:00:00:00:01", mtu="1400").execute(check_error=True)
    if physnet:
        nb.lsp_add(switch, f"{switch}-localnet", type="localnet",
                   options={"network_name": physnet}).execute(check_error=True)
    return switch


@pytest.fixture
def nb(nb_server):
    api = open_nb(nb_server.unix)
    yield api
    api.ovsdb_connection.stop()


def test_find_network(nb):
    make_network(nb, "net1", "demo")
    make_network(nb, "prov", "demo", cidr="10.9.0.0/24", physnet="physnet1")
    make_network(nb, "net1", "other", cidr="10.1.0.0/24", dynamic=True)
    n = ovn_ports.find_network(nb, "net1", "demo")
    assert n.switch == "vd-demo-net1" and n.subnet == "10.0.0.0/24" and n.dhcp_options
    assert n.physnet is None and not n.dynamic
    assert ovn_ports.find_network(nb, "prov", "demo").physnet == "physnet1"
    o = ovn_ports.find_network(nb, "net1", "other")
    assert o.dynamic and o.subnet == "10.1.0.0/24" and o.dhcp_options != n.dhcp_options
    with pytest.raises(ValidationError, match="networks: net1, prov"):
        ovn_ports.find_network(nb, "nope", "demo")


def test_create_and_delete_port(nb):
    make_network(nb)
    net = ovn_ports.find_network(nb, "net1", "demo")
    p = ovn_ports.create_vm_port(nb, net, tenant="demo", vm="web1", nic=0)
    uuid.UUID(p.name)  # named by a UUID (libvirt interfaceid)
    assert p.ip == "10.0.0.2"  # .1 is the gateway
    row = nb.lsp_get(p.name).execute(check_error=True)
    assert row.addresses == [f"{p.mac} 10.0.0.2"]
    assert row.port_security == [f"{p.mac} 10.0.0.2"]
    assert str(row.dhcpv4_options[0].uuid) == net.dhcp_options
    assert row.external_ids == {"virtdeck:tenant": "demo", "virtdeck:vm": "web1",
                                "virtdeck:network": "net1", "virtdeck:name": "web1-nic0"}
    p2 = ovn_ports.create_vm_port(nb, net, tenant="demo", vm="web2", nic=0)
    assert p2.ip == "10.0.0.3" and p2.mac != p.mac
    assert [x.name for x in ovn_ports.ports_of_vm(nb, "demo", "web1")] == [p.name]
    # a chosen address: checked against the subnet and the ports already there
    with pytest.raises(ValidationError, match="already used"):
        ovn_ports.create_vm_port(nb, net, tenant="demo", vm="web3", nic=0, ip="10.0.0.2")
    with pytest.raises(ValidationError, match="not a host address"):
        ovn_ports.create_vm_port(nb, net, tenant="demo", vm="web3", nic=0, ip="10.0.1.5")
    with pytest.raises(ValidationError, match="already used"):
        ovn_ports.create_vm_port(nb, net, tenant="demo", vm="web3", nic=0, ip="10.0.0.1")
    p3 = ovn_ports.create_vm_port(nb, net, tenant="demo", vm="web3", nic=0, ip="10.0.0.50")
    assert p3.ip == "10.0.0.50"
    for x in (p, p2, p3):
        ovn_ports.delete_port(nb, x.name)
    ovn_ports.delete_port(nb, p.name)  # idempotent
    assert nb.ls_get("vd-demo-net1").execute(check_error=True).ports == []


def test_dynamic_network_uses_ovn_ipam(nb):
    make_network(nb, dynamic=True)
    net = ovn_ports.find_network(nb, "net1", "demo")
    p = ovn_ports.create_vm_port(nb, net, tenant="demo", vm="web1", nic=0)
    assert p.ip is None
    row = nb.lsp_get(p.name).execute(check_error=True)
    assert row.addresses == [f"{p.mac} dynamic"] and row.port_security == [p.mac]


def test_transaction_failure_is_a_host_error(nb):
    make_network(nb)
    net = ovn_ports.find_network(nb, "net1", "demo")
    gone = ovn_ports.NetworkInfo(**{**net.__dict__, "switch": "no-such-switch"})
    with pytest.raises(HostError, match="no-such-switch"):
        ovn_ports.create_vm_port(nb, gone, tenant="demo", vm="web1", nic=0)
    assert nb.tables["Logical_Switch_Port"].rows == {} or all(
        "virtdeck:vm" not in r.external_ids for r in nb.tables["Logical_Switch_Port"].rows.values())
