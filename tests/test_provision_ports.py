"""VM ports in a real OVN NB ovsdb-server (backends/ovn/ports.py)."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from virtdeck.backends.ovn import networks as ovn_networks, ports as ovn_ports, rows as ovn_rows
from virtdeck.backends.session import open_nb
from virtdeck.console.errors import HostError, ValidationError


def make_network(nb, name="net1", tenant="demo", cidr="10.0.0.0/24", physnet=None, vlan=None):
    """A network laid out by the networks engineer's backend (one transaction)."""
    gw = cidr.rsplit(".", 1)[0] + ".1"
    spec = ovn_networks.NetworkSpec(tenant=tenant, name=name, kind="provider" if physnet else "overlay",
                                    cidr=cidr, gateway=gw, physnet=physnet, vlan=vlan)
    return ovn_networks.create_network(nb, spec)


@pytest.fixture
def nb(nb_server):
    api = open_nb(nb_server.unix)
    yield api
    api.ovsdb_connection.stop()


def test_find_network(nb):
    make_network(nb, "net1", "demo")
    make_network(nb, "net2", "demo", cidr="10.9.0.0/24")
    make_network(nb, "net1", "other", cidr="10.1.0.0/24")
    n = ovn_ports.find_network(nb, "net1", "demo")
    assert n.switch == "vd.demo.net1" and n.cidr == "10.0.0.0/24" and n.dhcp_options
    assert n.physnet is None
    o = ovn_ports.find_network(nb, "net1", "other")
    assert o.cidr == "10.1.0.0/24" and o.dhcp_options != n.dhcp_options
    with pytest.raises(ValidationError, match="networks: net1, net2"):
        ovn_ports.find_network(nb, "nope", "demo")


def test_create_and_delete_port(nb):
    make_network(nb)
    net = ovn_ports.find_network(nb, "net1", "demo")
    before = ovn_rows.virtdeck_rows(nb)
    p = ovn_ports.create_vm_port(nb, net, tenant="demo", vm="web1", nic=0)
    uuid.UUID(p.name)  # named by a UUID (libvirt interfaceid)
    assert p.ip == "10.0.0.2"  # .1 is the gateway
    assert p.created_sg == "vdsg_4_demo_default"
    row = nb.lsp_get(p.name).execute(check_error=True)
    assert row.addresses == [f"{p.mac} 10.0.0.2"]
    assert row.port_security == [f"{p.mac} 10.0.0.2"]
    assert str(row.dhcpv4_options[0].uuid) == net.dhcp_options
    assert row.external_ids == {"virtdeck:tenant": "demo", "virtdeck:vm": "web1",
                                "virtdeck:network": "net1", "virtdeck:name": "web1-nic0"}
    pg = nb.pg_get("vdsg_4_demo_default").execute(check_error=True)
    assert [x.name for x in pg.ports] == [p.name]
    p2 = ovn_ports.create_vm_port(nb, net, tenant="demo", vm="web2", nic=0)
    assert p2.ip == "10.0.0.3" and p2.mac != p.mac and p2.created_sg is None
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
    for x in (p3, p2, p):
        ovn_ports.delete_port(nb, x.name, drop_empty_sg=x.created_sg)
    ovn_ports.delete_port(nb, p.name)  # idempotent
    assert nb.ls_get("vd.demo.net1").execute(check_error=True).ports == []
    assert ovn_rows.virtdeck_rows(nb) == before  # the default group it made went too


def test_dynamic_address_uses_ovn_ipam(nb):
    make_network(nb)
    net = ovn_ports.find_network(nb, "net1", "demo")
    p = ovn_ports.create_vm_port(nb, net, tenant="demo", vm="web1", nic=0, ip="dynamic")
    assert p.ip is None
    row = nb.lsp_get(p.name).execute(check_error=True)
    assert row.addresses == [f"{p.mac} dynamic"] and row.port_security == [p.mac]


def test_transaction_failure_is_a_host_error(nb):
    make_network(nb)
    net = ovn_ports.find_network(nb, "net1", "demo")
    before = ovn_rows.virtdeck_rows(nb)
    gone = dataclasses.replace(net, switch="no-such-switch")
    with pytest.raises(HostError, match="no-such-switch"):
        ovn_ports.create_vm_port(nb, gone, tenant="demo", vm="web1", nic=0)
    assert ovn_rows.virtdeck_rows(nb) == before
