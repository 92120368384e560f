"""Networks, routers, NAT and security groups against a real OVN NB ovsdb-server (no lab).

Rows are checked through a second, independent reader where it matters (`ovn-nbctl`), so a test
passes only if the server really holds what virtdeck meant to write.
"""

from __future__ import annotations

import json

import pytest

from virtdeck.backends.ovn import networks as ovn_networks, routers as ovn_routers, rows as ovn_rows, security_groups as ovn_sg
from virtdeck.console.errors import ReadOnlyError, ValidationError
from virtdeck.console.services import guard
from virtdeck.console.services import network as netsvc
from virtdeck.console.services import router as rsvc
from virtdeck.console.services import security as sgsvc
from virtdeck.console.services.network import NetworkRequest
from ovn_helpers import PHYSNETS, add_vm_port, nb_json, nbctl, ovs_map


def overlay(tenant="t1", name="web", cidr="10.0.0.0/24", **kw) -> NetworkRequest:
    return NetworkRequest(tenant=tenant, name=name, kind="overlay", cidr=cidr, **kw)


def test_overlay_network_rows(api, nb_server, audit_log):
    info = netsvc.create_network(api, overlay(dns="192.0.2.53, 192.0.2.54", exclude="10.0.0.2..10.0.0.9",
                                              lease_time="600"))
    assert info.switch == "vd.t1.web" and info.kind == "overlay" and info.mtu == 1400
    assert info.gateway == "10.0.0.1" and info.dhcp and info.dhcp_options
    [ls] = nb_json(nb_server, "Logical_Switch", "name", "external_ids", "other_config")
    ext, oc = ovs_map(ls["external_ids"]), ovs_map(ls["other_config"])
    assert ext["virtdeck:tenant"] == "t1" and ext["virtdeck:name"] == "web"
    assert ext["virtdeck:role"] == "network" and ext["virtdeck:cidr"] == "10.0.0.0/24"
    assert oc == {"subnet": "10.0.0.0/24", "exclude_ips": "10.0.0.1 10.0.0.2..10.0.0.9"}
    [d] = nb_json(nb_server, "DHCP_Options", "_uuid", "cidr", "options", "external_ids")
    assert d["_uuid"][1] == info.dhcp_options and d["cidr"] == "10.0.0.0/24"
    opts = ovs_map(d["options"])
    assert opts == {"router": "10.0.0.1", "server_id": "10.0.0.1", "server_mac": info.server_mac,
                    "lease_time": "600", "mtu": "1400", "dns_server": "{192.0.2.53, 192.0.2.54}"}
    assert ovs_map(d["external_ids"])["virtdeck:network"] == "web"
    assert nb_json(nb_server, "Logical_Switch_Port", "name") == []  # overlay: no localnet port
    # find_network is what provisioning uses
    found = ovn_networks.find_network(api, "web", "t1")
    assert found == info
    rec = [json.loads(l) for l in audit_log.read_text().splitlines()]
    assert rec[-1]["verb"] == "network.create" and rec[-1]["outcome"] == "ok"


def test_provider_networks_localnet(api, nb_server):
    v100 = netsvc.create_network(api, NetworkRequest("t1", "vlan100", "provider", "10.100.0.0/24",
                                                     physnet="physnet1", vlan="100"), PHYSNETS)
    flat = netsvc.create_network(api, NetworkRequest("t1", "ext", "provider", "172.16.0.0/24",
                                                     gateway="172.16.0.254", dhcp=False,
                                                     physnet="physnet1", vlan=""), PHYSNETS)
    assert v100.mtu == 1500 and v100.vlan == 100 and v100.physnet == "physnet1"
    assert flat.vlan is None and flat.dhcp_options is None and not flat.dhcp
    ports = {p["name"]: p for p in nb_json(nb_server, "Logical_Switch_Port", "name", "type",
                                           "options", "tag", "addresses")}
    p = ports["ln:vd.t1.vlan100"]
    assert p["type"] == "localnet" and p["tag"] == 100 and p["addresses"] == "unknown"
    assert ovs_map(p["options"]) == {"network_name": "physnet1"}
    assert ports["ln:vd.t1.ext"]["tag"] == ["set", []]
    assert len(nb_json(nb_server, "DHCP_Options", "_uuid")) == 1


@pytest.mark.parametrize("req, field, words", [
    (overlay(name="x", cidr="10.0.0.0/16"), "cidr", "overlaps 10.0.0.0/24"),
    (overlay(name="web"), "name", "already has a network"),
    (overlay(name="x", cidr="10.9.0.0/24", gateway="10.8.0.1"), "gateway", "outside 10.9.0.0/24"),
    (overlay(name="x", cidr="10.9.0.5/24"), "cidr", "did you mean 10.9.0.0/24"),
    (overlay(name="x", cidr="10.9.0.0/24", mtu="9999"), "mtu", "between 576 and 9000"),
    (overlay(name="x", cidr="10.9.0.0/24", dns="8.8.8"), "dns", "not an IPv4"),
    (overlay(name="x", cidr="10.9.0.0/24", lease_time="5"), "lease_time", "between"),
    (overlay(name="x", cidr="10.9.0.0/24", exclude="10.8.0.3"), "exclude", "outside"),
    (overlay(name="Bad_Name"), "name", "lowercase"),
    (NetworkRequest("t1", "p", "provider", "10.50.0.0/24", physnet="physnet9", vlan=5), "physnet", "no hypervisor maps"),
    (NetworkRequest("t2", "p", "provider", "10.50.0.0/24", physnet="physnet1", vlan=100), "vlan", "already used by network t1/v100"),
    (NetworkRequest("t1", "p", "provider", "10.50.0.0/24", physnet="physnet1", vlan=4095), "vlan", "1–4094"),
    (NetworkRequest("t1", "p", "bridge", "10.50.0.0/24"), "kind", "overlay"),
])
def test_refusals_write_nothing(api, nb_server, req, field, words):
    netsvc.create_network(api, overlay())
    netsvc.create_network(api, NetworkRequest("t1", "v100", "provider", "10.100.0.0/24",
                                              physnet="physnet1", vlan=100), PHYSNETS)
    before = ovn_rows.virtdeck_rows(api)
    with pytest.raises(ValidationError) as ei:
        netsvc.create_network(api, req, PHYSNETS)
    assert ei.value.field == field and words in str(ei.value)
    assert ovn_rows.virtdeck_rows(api) == before


def test_same_cidr_in_two_tenants_is_fine(api):
    a = netsvc.create_network(api, overlay("ta", "net"))
    b = netsvc.create_network(api, overlay("tb", "net"))
    assert a.switch != b.switch and a.cidr == b.cidr


def test_delete_refused_with_vm_ports_then_cascade(api, nb_server):
    net = netsvc.create_network(api, overlay())
    add_vm_port(nb_server, net, "3f1c6f0e-0000-4000-8000-000000000001", "0a:00:00:00:00:01", "10.0.0.5", api)
    sgsvc.add_port(api, "t1", "default", "3f1c6f0e-0000-4000-8000-000000000001")
    assert ovn_networks.find_network(api, "web", "t1").vm_ports == ("3f1c6f0e-0000-4000-8000-000000000001",)
    with pytest.raises(ValidationError) as ei:
        netsvc.delete_network(api, "t1", "web")
    assert ei.value.field == "cascade" and "has 1 VM port" in str(ei.value)
    assert len(nb_json(nb_server, "Logical_Switch", "name")) == 1
    netsvc.delete_network(api, "t1", "web", cascade=True)
    assert nb_json(nb_server, "Logical_Switch", "name") == []
    assert nb_json(nb_server, "Logical_Switch_Port", "name") == []
    assert nb_json(nb_server, "DHCP_Options", "_uuid") == []
    [pg] = nb_json(nb_server, "Port_Group", "name", "ports")
    assert pg["ports"] == ["set", []]
    sgsvc.delete_security_group(api, "t1", "default")
    assert ovn_rows.virtdeck_rows(api) == {}


def test_router_gateway_snat_fip_and_clean_delete(api, nb_server):
    netsvc.create_network(api, overlay())
    netsvc.create_network(api, NetworkRequest("t1", "ext", "provider", "172.16.0.0/24", gateway="172.16.0.254",
                                              dhcp=False, physnet="physnet1"), PHYSNETS)
    rsvc.create_router(api, "t1", "r1")
    with pytest.raises(ValidationError) as ei:
        rsvc.add_snat(api, "t1", "r1", "web")
    assert ei.value.field == "router"
    r = rsvc.attach_network(api, "t1", "r1", "web")
    assert r.networks == ("web",)
    with pytest.raises(ValidationError) as ei:
        rsvc.set_gateway(api, "t1", "r1", "web", "10.0.0.50", "hv1")
    assert ei.value.field == "network"
    with pytest.raises(ValidationError) as ei:
        rsvc.set_gateway(api, "t1", "r1", "ext", "172.17.0.5", "hv1")
    assert ei.value.field == "address"
    r = rsvc.set_gateway(api, "t1", "r1", "ext", "172.16.0.100", "hv1")
    assert (r.gateway_network, r.gateway_address, r.gateway_chassis, r.nexthop) == \
        ("ext", "172.16.0.100/24", "hv1", "172.16.0.254")
    rsvc.add_snat(api, "t1", "r1", "web")
    net = ovn_networks.find_network(api, "web", "t1")
    add_vm_port(nb_server, net, "3f1c6f0e-0000-4000-8000-000000000002", "0a:00:00:00:00:02", "10.0.0.7", api)
    with pytest.raises(ValidationError) as ei:
        rsvc.add_fip(api, "t1", "r1", "172.16.0.100", port="3f1c6f0e-0000-4000-8000-000000000002")
    assert ei.value.field == "external_ip" and "gateway of router" in str(ei.value)
    r = rsvc.add_fip(api, "t1", "r1", "172.16.0.101", port="3f1c6f0e-0000-4000-8000-000000000002")
    assert {(n.kind, n.external_ip, n.logical_ip) for n in r.nat} == {
        ("snat", "172.16.0.100", "10.0.0.0/24"), ("fip", "172.16.0.101", "10.0.0.7")}
    # An independent reader agrees.
    nat = nbctl(nb_server, "lr-nat-list", "vd.t1.r1")
    assert "dnat_and_snat" in nat and "172.16.0.101" in nat and "10.0.0.0/24" in nat
    routes = nbctl(nb_server, "lr-route-list", "vd.t1.r1")
    assert "0.0.0.0/0" in routes and "172.16.0.254" in routes
    gw = nbctl(nb_server, "lrp-get-gateway-chassis", "lrp:vd.t1.r1:ext")
    assert "hv1" in gw
    lrp_mac = nbctl(nb_server, "get", "Logical_Router_Port", "lrp:vd.t1.r1:web", "mac").strip().strip('"')
    assert lrp_mac == net.server_mac  # router port answers with the DHCP server's MAC
    # deleting the gateway network needs the cascade; it takes gateway + NAT along
    with pytest.raises(ValidationError):
        netsvc.delete_network(api, "t1", "ext")
    netsvc.delete_network(api, "t1", "ext", cascade=True)
    r = ovn_routers.find_router(api, "r1", "t1")
    assert r.gateway_network is None and r.nat == () and r.nexthop is None
    rsvc.delete_router(api, "t1", "r1")
    netsvc.delete_network(api, "t1", "web", cascade=True)
    assert ovn_rows.virtdeck_rows(api) == {}
    assert nbctl(nb_server, "show").strip() == ""


def test_security_groups(api, nb_server):
    net = netsvc.create_network(api, overlay())
    lsp = "3f1c6f0e-0000-4000-8000-000000000003"
    # Provisioning's pattern: LSP + default-group membership in ONE outer transaction.
    with api.transaction(check_error=True) as txn:
        port = txn.add(api.lsp_add(net.switch, lsp, addresses=["0a:00:00:00:00:03 10.0.0.9"],
                                   port_security=["0a:00:00:00:00:03 10.0.0.9"]))
        pg = ovn_sg.add_port_to_default_sg(api, "t1", port)
    assert pg == "vdsg_2_t1_default"
    [sg] = sgsvc.list_security_groups(api, "t1")
    assert sg.ports == (lsp,) and [r.text() for r in sg.rules] == ["egress any", "ingress any from self"]
    acls = nbctl(nb_server, "acl-list", pg)
    assert "from-lport  1002 (inport == @vdsg_2_t1_default && ip4) allow-related" in acls
    assert "to-lport  1002 (outport == @vdsg_2_t1_default && ip4 && ip4.src == $vdsg_2_t1_default_ip4) allow-related" in acls
    assert "to-lport  1001 (outport == @vdsg_2_t1_default && ip) drop" in acls
    sg = sgsvc.add_rule(api, "t1", "default", "ingress tcp 22 from 0.0.0.0/0")
    sg = sgsvc.add_rule(api, "t1", "default", "ingress icmp from 198.51.100.0/24")
    assert [r.text() for r in sg.rules][-2:] == ["ingress tcp 22", "ingress icmp from 198.51.100.0/24"]
    acls = nbctl(nb_server, "acl-list", pg)
    assert "(outport == @vdsg_2_t1_default && ip4 && tcp && tcp.dst == 22) allow-related" in acls
    assert "ip4.src == 198.51.100.0/24 && icmp4" in acls
    assert len(acls.strip().splitlines()) == 6
    sg = sgsvc.delete_rule(api, "t1", "default", "ingress tcp 22")
    assert len(sg.rules) == 3
    with pytest.raises(ValidationError) as ei:
        sgsvc.set_rules(api, "t1", "default", ["egress any", "ingress tcp 70000"])
    assert ei.value.field == "rules" and "line 2" in str(ei.value)
    assert len(ovn_sg.find_security_group(api, "t1", "default").rules) == 3  # unchanged
    # one tenant's ports never land in another tenant's group
    assert sgsvc.list_security_groups(api, "t2") == []


def test_sg_rule_text_round_trip():
    for text in ["egress any", "ingress any from self", "ingress tcp 22", "ingress udp 5000-5100 from 10.0.0.0/8",
                 "egress tcp 443 to 192.0.2.0/24", "ingress icmp"]:
        assert ovn_sg.SgRule.parse(text).text() == text
    for bad in ["sideways any", "ingress gre", "ingress icmp 22", "ingress tcp 0", "egress any from 1.2.3.0/24"]:
        with pytest.raises(ValueError):
            ovn_sg.SgRule.parse(bad)


def test_readonly_refuses_before_anything(api):
    guard.set_readonly(True)
    try:
        with pytest.raises(ReadOnlyError):
            netsvc.create_network(api, overlay())
    finally:
        guard.set_readonly(False)
    assert ovn_rows.virtdeck_rows(api) == {}


def test_idempotent_backend_create(api):
    spec = netsvc.validate_network(overlay(), [], None)
    a = ovn_networks.create_network(api, spec)
    b = ovn_networks.create_network(api, spec)
    assert a.uuid == b.uuid and len(api.tables["DHCP_Options"].rows) == 1


def test_cli_network_and_router_verbs(nb_server, tmp_path, audit_log, capsys):
    from virtdeck.console.cli import main
    inv = tmp_path / "inventory.toml"
    inv.write_text(f'[ovn]\nconnection = "{nb_server.unix}"\n')
    base = ["--config", str(inv)]
    assert main(base + ["network", "create", "web", "-t", "demo", "--cidr", "10.0.0.0/24", "--dns", "192.0.2.53"]) == 0
    assert main(base + ["network", "create", "bad", "-t", "demo", "--cidr", "10.0.0.0/25"]) == 2
    assert "cidr: 10.0.0.0/25 overlaps" in capsys.readouterr().err
    assert main(base + ["--json", "network", "list", "-t", "demo"]) == 0
    [n] = json.loads(capsys.readouterr().out)
    assert (n["name"], n["cidr"], n["mtu"], n["dns"]) == ("web", "10.0.0.0/24", 1400, ["192.0.2.53"])
    assert main(base + ["router", "create", "r1", "-t", "demo"]) == 0
    assert main(base + ["router", "attach", "r1", "web", "-t", "demo"]) == 0
    assert main(base + ["--readonly", "network", "delete", "web", "-t", "demo"]) == 7
    assert main(base + ["network", "delete", "web", "-t", "demo"]) == 4  # in use
    assert "is attached to router(s) r1" in capsys.readouterr().err
    assert main(base + ["network", "delete", "web", "-t", "demo", "--cascade"]) == 0
    assert main(base + ["router", "delete", "r1", "-t", "demo"]) == 0
    guard.set_readonly(False)
    verbs = [json.loads(l)["verb"] for l in audit_log.read_text().splitlines()]
    assert verbs.count("network.create") == 2 and "router.attach" in verbs


def test_gateway_is_idempotent_and_movable(api, nb_server):
    netsvc.create_network(api, overlay())
    netsvc.create_network(api, NetworkRequest("t1", "ext", "provider", "172.16.0.0/24", gateway="172.16.0.254",
                                              dhcp=False, physnet="physnet1"), PHYSNETS)
    rsvc.create_router(api, "t1", "r1")
    rsvc.attach_network(api, "t1", "r1", "web")
    rsvc.set_gateway(api, "t1", "r1", "ext", "172.16.0.100", "hv1")
    rsvc.add_snat(api, "t1", "r1", "web")
    # same again, other chassis: NAT kept, one gateway chassis, one default route
    r = rsvc.set_gateway(api, "t1", "r1", "ext", "172.16.0.100", "hv2")
    assert r.gateway_chassis == "hv2" and len(r.nat) == 1
    assert len(nb_json(nb_server, "Gateway_Chassis", "name")) == 1
    assert nbctl(nb_server, "lr-route-list", "vd.t1.r1").count("0.0.0.0/0") == 1
    # a new address moves the port and its SNAT along
    r = rsvc.set_gateway(api, "t1", "r1", "ext", "172.16.0.101", "hv1")
    assert r.gateway_address == "172.16.0.101/24" and r.gateway_chassis == "hv1"
    assert [(n.kind, n.external_ip, n.logical_ip) for n in r.nat] == [("snat", "172.16.0.101", "10.0.0.0/24")]
    assert len(nb_json(nb_server, "Logical_Router_Port", "name")) == 2
    # another provider network: the old gateway and its NAT go
    netsvc.create_network(api, NetworkRequest("t1", "ext2", "provider", "172.17.0.0/24", physnet="physnet1",
                                              vlan=7, dhcp=False), PHYSNETS)
    r = rsvc.set_gateway(api, "t1", "r1", "ext2", "172.17.0.5", "hv2")
    assert (r.gateway_network, r.gateway_address, r.nat, r.nexthop) == ("ext2", "172.17.0.5/24", (), "172.17.0.1")
    assert len(nb_json(nb_server, "Logical_Router_Port", "name")) == 2
    assert len(nb_json(nb_server, "Gateway_Chassis", "name")) == 1
    rsvc.delete_router(api, "t1", "r1")
    for n in ("web", "ext", "ext2"):
        netsvc.delete_network(api, "t1", n)
    assert ovn_rows.virtdeck_rows(api) == {}
