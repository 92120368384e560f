"""backends.ovn.connection against a real ovsdb-server with the OVN NB schema (fixture nb_server),
changed from outside with ovn-nbctl as an operator would."""

from __future__ import annotations

import queue
import subprocess
import time

import pytest

from virtdeck.backends.ovn import connection as ovn_nb
from fixtures_real import start_nb, stop_pid, wait_for


def nbctl(server, *args: str) -> str:
    out = subprocess.run(["ovn-nbctl", f"--db={server.unix}", *args], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


@pytest.fixture
def nb(nb_server):
    api = ovn_nb.connect(nb_server.unix, timeout=5)
    changes: queue.Queue = queue.Queue()
    ovn_nb.set_sink(api, changes.put_nowait)
    yield api, changes, nb_server
    ovn_nb.close(api)


def drain_until(changes: queue.Queue, pred, timeout: float = 2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            ch = changes.get(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            break
        if pred(ch):
            return ch
    raise AssertionError("no matching NB change")


def test_switch_and_port_events_and_read(nb):
    api, changes, server = nb
    assert ovn_nb.is_connected(api)
    t0 = time.monotonic()
    nbctl(server, "ls-add", "sw1", "--", "set", "Logical_Switch", "sw1",
          "other_config:subnet=10.1.0.0/24", "external_ids:virtdeck\\:tenant=acme",
          "external_ids:virtdeck\\:name=web")
    ch = drain_until(changes, lambda c: "Logical_Switch" in c.tables)
    assert ch.at - t0 < 1.0
    data = ovn_nb.read(api)
    (net,) = data.networks
    assert (net.name, net.kind_label, net.subnet, net.tenant, net.display_name) == \
        ("sw1", "overlay", "10.1.0.0/24", "acme", "web")

    nbctl(server, "lsp-add", "sw1", "p1", "--", "lsp-set-addresses", "p1",
          "52:54:00:00:00:01 10.1.0.5", "--", "set", "Logical_Switch_Port", "p1",
          "external_ids:virtdeck\\:vm=vm1")
    drain_until(changes, lambda c: "Logical_Switch_Port" in c.tables)
    data = ovn_nb.read(api)
    (port,) = data.ports
    assert (port.switch, port.mac, port.ips, port.vm) == ("sw1", "52:54:00:00:00:01", ("10.1.0.5",), "vm1")
    assert data.networks[0].ports == ("p1",)

    nbctl(server, "lsp-del", "p1")
    drain_until(changes, lambda c: "Logical_Switch_Port" in c.tables)
    assert ovn_nb.read(api).ports == ()


def test_provider_vlan_dhcp_and_router(nb):
    api, changes, server = nb
    nbctl(server, "ls-add", "prov")
    nbctl(server, "lsp-add", "prov", "ln-prov", "--", "lsp-set-type", "ln-prov", "localnet",
          "--", "lsp-set-options", "ln-prov", "network_name=physnet1",
          "--", "set", "Logical_Switch_Port", "ln-prov", "tag=100")
    nbctl(server, "ls-add", "flat")
    nbctl(server, "lsp-add", "flat", "ln-flat", "--", "lsp-set-type", "ln-flat", "localnet",
          "--", "lsp-set-options", "ln-flat", "network_name=physnet1")
    nbctl(server, "create", "DHCP_Options", "cidr=10.2.0.0/24",
          "external_ids:virtdeck\\:network=prov", "options:router=10.2.0.1", "options:mtu=1400",
          "options:lease_time=3600", "options:server_id=10.2.0.1",
          "options:server_mac=02\\:00\\:00\\:00\\:00\\:01")
    nbctl(server, "lr-add", "r1")
    nbctl(server, "lrp-add", "r1", "r1-prov", "02:00:00:00:01:01", "10.2.0.1/24")
    nbctl(server, "lsp-add", "prov", "prov-r1", "--", "lsp-set-type", "prov-r1", "router",
          "--", "lsp-set-addresses", "prov-r1", "router", "--", "lsp-set-options", "prov-r1",
          "router-port=r1-prov")
    nbctl(server, "lr-nat-add", "r1", "snat", "192.168.100.50", "10.2.0.0/24")
    wait_for(lambda: len(ovn_nb.read(api).routers) == 1 and ovn_nb.read(api).routers[0].nats, 2,
             "router with NAT in the replica")
    data = ovn_nb.read(api)
    nets = {n.name: n for n in data.networks}
    assert nets["prov"].kind_label == "provider VLAN 100" and nets["prov"].physnet == "physnet1"
    assert nets["flat"].kind_label == "provider untagged"
    assert nets["prov"].dhcp.cidr == "10.2.0.0/24" and nets["prov"].dhcp.router == "10.2.0.1"
    assert nets["prov"].subnet == "10.2.0.0/24" and nets["prov"].mtu == 1400
    (r,) = data.routers
    assert r.ports[0].networks == ("10.2.0.1/24",) and r.ports[0].peer_switch == "prov"
    assert (r.nats[0].type, r.nats[0].external_ip) == ("snat", "192.168.100.50")


def test_nb_down_keeps_data_then_resyncs(tmp_path):
    """NB-down behaviour: the replica keeps its rows while the server is gone (stale), the
    sink hears connected=False, and on return the replica resyncs with what changed."""
    server = start_nb(tmp_path / "nb")
    api = ovn_nb.connect(server.unix, timeout=5)
    changes: queue.Queue = queue.Queue()
    ovn_nb.set_sink(api, changes.put_nowait)
    try:
        nbctl(server, "ls-add", "keep")
        nbctl(server, "ls-add", "gone")
        wait_for(lambda: len(ovn_nb.read(api).networks) == 2, 2, "two switches")
        stop_pid(server.pid)
        drain_until(changes, lambda c: not c.connected, timeout=5)
        assert not ovn_nb.is_connected(api)
        assert [n.name for n in ovn_nb.read(api).networks] == ["gone", "keep"]   # kept, stale
        # while it is down, someone edits the database file; then it comes back
        subprocess.run(["ovsdb-tool", "transact", str(server.db),
                        '["OVN_Northbound", {"op": "delete", "table": "Logical_Switch",'
                        ' "where": [["name", "==", "gone"]]}]'], check=True, capture_output=True)
        server = start_nb(tmp_path / "nb")
        drain_until(changes, lambda c: c.connected, timeout=15)
        wait_for(lambda: [n.name for n in ovn_nb.read(api).networks] == ["keep"], 5, "resync")
    finally:
        ovn_nb.close(api)
        stop_pid(server.pid)


def test_connect_to_nothing_raises_quickly(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(Exception):
        ovn_nb.connect(f"unix:{tmp_path}/nothing.sock", timeout=2)
    assert time.monotonic() - t0 < 4


def test_member_in_use_and_members_parsing(nb_server):
    """connection.member names the server the IDL talks to (the status line's "via"), None
    while down; remote.members splits a list the way python-ovs does."""
    from virtdeck.backends.ovn.remote import members
    assert members("tcp:a:1, ssl:b:2 ,unix:/x,y") == ["tcp:a:1", "ssl:b:2", "unix:/x,y"]
    api = ovn_nb.connect(nb_server.tcp, timeout=5)
    try:
        assert ovn_nb.member(api) == nb_server.tcp
        stop_pid(nb_server.pid)
        wait_for(lambda: ovn_nb.member(api) is None, 5, "the member to drop")
    finally:
        ovn_nb.close(api)
