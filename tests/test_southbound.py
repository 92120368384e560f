"""The southbound reader (backends/ovn/southbound.py) against a real ovsdb-server with the OVN SB
schema (rows made with ovn-sbctl, as ovn-controller and ovn-northd would), and against the lab's
SB (read only): chassis with encaps and bridge mappings claimed by inventory hosts, port bindings
with their chassis, a router's active gateway chassis, and the drift check's unclaimed chassis."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures_real import _unix_accepts, stop_pid, wait_for
from provision_helpers import lab_inventory, lab_session  # noqa: F401 (fixtures)

SB_SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"


@dataclass
class Sb:
    unix: str
    pid: int


@pytest.fixture
def sb_server(tmp_path):
    """A throwaway ovsdb-server with the OVN SB schema on a unix socket."""
    db = tmp_path / "sb.db"
    subprocess.run(["ovsdb-tool", "create", str(db), SB_SCHEMA], check=True)
    sock = tmp_path / "sb.sock"
    proc = subprocess.Popen(["ovsdb-server", str(db), f"--remote=punix:{sock}",
                             f"--unixctl={tmp_path}/sb.ctl", "--no-chdir", f"--log-file={tmp_path}/sb.log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _unix_accepts(sock), 10, "SB ovsdb-server socket")
    yield Sb(f"unix:{sock}", proc.pid)
    stop_pid(proc.pid)


def sbctl(sb: Sb, *args: str) -> str:
    return subprocess.run(["ovn-sbctl", f"--db={sb.unix}", *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@dataclass(frozen=True)
class H:
    name: str
    address: str


HOSTS = (H("hv1", "192.168.100.11"), H("hv2", "192.168.100.12"))


def _populate(sb: Sb) -> None:
    sbctl(sb, "chassis-add", "hv1", "geneve", "172.16.0.11")
    sbctl(sb, "chassis-add", "b1c2-ghost", "geneve", "172.16.0.99")
    sbctl(sb, "chassis-add", "hv2-id", "geneve", "172.16.0.12")
    sbctl(sb, "set", "Chassis", "hv1", "hostname=hv1", "other_config:ovn-bridge-mappings=physnet1:br-phys")
    sbctl(sb, "set", "Chassis", "hv2-id", "hostname=hv2.lab.example")
    sbctl(sb, "set", "Chassis", "b1c2-ghost", "hostname=gone")
    sbctl(sb, "--", "--id=@sw", "create", "Datapath_Binding", "tunnel_key=1", "external_ids:name=sw1",
          "--", "--id=@lr", "create", "Datapath_Binding", "tunnel_key=2", "external_ids:name=lr1",
          "--", "--id=@hv1", "get", "Chassis", "hv1",
          "--", "--id=@hv2", "get", "Chassis", "hv2-id",
          "--", "create", "Port_Binding", "logical_port=vmport1", "datapath=@sw", "tunnel_key=1",
          "chassis=@hv2", "up=true", 'mac="52:54:00:00:00:01 10.0.0.5"',
          "--", "create", "Port_Binding", "logical_port=vmport2", "datapath=@sw", "tunnel_key=2",
          "--", "--id=@g1", "create", "Gateway_Chassis", "name=lrp-gw-hv1",
          "chassis=@hv1", "priority=20",
          "--", "--id=@g2", "create", "Gateway_Chassis", "name=lrp-gw-hv2",
          "chassis=@hv2", "priority=10",
          "--", "create", "Port_Binding", "logical_port=cr-lrp-gw", "type=chassisredirect",
          "datapath=@lr", "tunnel_key=3", "chassis=@hv1", "gateway_chassis=[@g1,@g2]")


def test_read_chassis_bindings_gateways(sb_server):
    from virtdeck.backends.ovn import southbound as sb
    _populate(sb_server)
    api = sb.connect(sb_server.unix, timeout=5)
    try:
        data = sb.read(api, HOSTS)
    finally:
        sb.close(api)
    by = {c.name: c for c in data.chassis}
    assert by["hv1"].host == "hv1" and by["hv1"].encaps == (("geneve", "172.16.0.11"),)
    assert by["hv1"].bridge_mappings == {"physnet1": "br-phys"}
    assert by["hv2-id"].host == "hv2"          # claimed by its hostname's first label
    assert by["b1c2-ghost"].host is None       # no inventory host is it
    b1 = data.binding("vmport1")
    assert (b1.chassis, b1.up, b1.datapath) == ("hv2-id", True, "sw1")
    assert data.host_of_chassis(b1.chassis) == "hv2"
    assert data.binding("vmport2").chassis is None
    (gw,) = data.gateways
    assert (gw.router, gw.port, gw.active, gw.candidates) == ("lr1", "lrp-gw", "hv1", ("hv1", "hv2-id"))


def test_unclaimed_chassis_is_a_finding(sb_server):
    """The drift check's chassis rule on a real SB read: the ghost chassis and nothing else."""
    from virtdeck.backends.ovn import southbound as sb
    from virtdeck.backends.ovn.connection import NbData
    from virtdeck.console.services import drift
    _populate(sb_server)
    api = sb.connect(sb_server.unix, timeout=5)
    try:
        data = sb.read(api, HOSTS)
    finally:
        sb.close(api)
    facts = drift.Facts(hosts={}, unreachable={}, nb=NbData(), fips=[], sb=data, sb_error=None,
                        inventory=None)
    fs = drift.findings(facts)
    assert [(f.kind, f.subject, f.safe) for f in fs] == [("chassis-unclaimed", "chassis b1c2-ghost", False)]
    assert "ovn-sbctl chassis-del b1c2-ghost" in fs[0].fix


def test_ssl_member_without_files_is_one_sentence():
    from virtdeck.backends.ovn import southbound as sb
    from virtdeck.console.errors import HostError
    with pytest.raises(HostError, match="ssl: needs ovn.private_key"):
        sb.connect("ssl:127.0.0.1:1", timeout=1)


@pytest.mark.lab
def test_lab_southbound_claims_every_hypervisor(lab_session, lab_inventory):
    """The lab's SB as its inventory names it (the ssl member list, or central's SB socket over
    SSH on a standalone lab): one chassis per hypervisor,
    each claimed by its inventory host, with a geneve encap on the tunnel network and physnet1
    mapped."""
    from virtdeck.backends.ovn import southbound as sb
    data = sb.snapshot(lab_session)
    hvs = {h.name for h in lab_inventory.hypervisors}
    claimed = {c.host for c in data.chassis if c.host}
    assert hvs <= claimed
    for c in data.chassis:
        if c.host in hvs:
            assert c.encaps and c.encaps[0][0] == "geneve" and c.encap_ip.startswith("172.16.0.")
            assert "physnet1" in c.bridge_mappings
    if lab_inventory.ovn.sb_connection:  # cluster-ssl: one of the ssl members
        members = [m.strip() for m in lab_inventory.ovn.sb_connection.split(",")]
        assert data.member in members and sorted(data.members) == sorted(members), data.member
    else:                                 # standalone: central's socket forwarded over SSH
        assert data.member and data.member.startswith("unix:")


def test_sb_over_ssl_and_a_wrong_ca(tmp_path, ssl_isolated):
    """An SB ovsdb-server on pssl: with a PKI: read over ssl: with the client key/cert; a CA
    that did not sign the server's certificate is one sentence naming ovn.ca_cert."""
    from fixtures_real import free_port, make_pki
    from virtdeck.backends.ovn import southbound as sb
    from virtdeck.backends.ovn.remote import SslFiles
    from virtdeck.console.errors import HostError
    pki = make_pki(tmp_path / "pki")
    db = tmp_path / "sb.db"
    subprocess.run(["ovsdb-tool", "create", str(db), SB_SCHEMA], check=True)
    port = free_port()
    sock = tmp_path / "sb.sock"
    proc = subprocess.Popen(["ovsdb-server", str(db), f"--remote=pssl:{port}:127.0.0.1",
                             f"--remote=punix:{sock}", f"--private-key={pki.server_key}",
                             f"--certificate={pki.server_cert}", f"--ca-cert={pki.ca_cert}",
                             f"--unixctl={tmp_path}/sb.ctl", "--no-chdir", f"--log-file={tmp_path}/sb.log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _unix_accepts(sock), 10, "SB ovsdb-server socket")
        sbctl(Sb(f"unix:{sock}", proc.pid), "chassis-add", "hv1", "geneve", "172.16.0.11")
        with pytest.raises(HostError, match="ovn.ca_cert"):
            sb.connect(f"ssl:127.0.0.1:{port}", timeout=5,
                       ssl=SslFiles(str(pki.client_key), str(pki.client_cert), str(pki.other_ca)))
        api = sb.connect(f"ssl:127.0.0.1:{port}", timeout=5,
                         ssl=SslFiles(str(pki.client_key), str(pki.client_cert), str(pki.ca_cert)))
        try:
            data = sb.read(api, HOSTS)
        finally:
            sb.close(api)
        assert [(c.name, c.host) for c in data.chassis] == [("hv1", "hv1")]
        assert data.member == f"ssl:127.0.0.1:{port}"
    finally:
        stop_pid(proc.pid)
